"""Adam (step 7): the optimizer that trains the GPT of step 10."""
import numpy as np


class Adam:
    """Adam with bias correction (Kingma & Ba), as torch.optim.Adam; for each parameter w with
    gradient g, at step t = 1, 2, ...:

        g ← g + λ w                       (weight_decay λ: an L2 penalty, when λ > 0)
        m ← β1 m + (1 − β1) g             the running mean of the gradients
        v ← β2 v + (1 − β2) g²            the running mean of their squares
        m̂ = m / (1 − β1ᵗ),  v̂ = v / (1 − β2ᵗ)   (m and v start at 0: this undoes that bias)
        w ← w − lr · m̂ / (√v̂ + ε)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.params = list(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.t = 0
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        """One update of every parameter that has a gradient (p.grad, a Tensor); p.data changes in place."""
        # BEGIN SOLUTION hint: step 7: count the step in self.t, then for each parameter with a gradient update self.m[i], self.v[i] and p.data in place (m *= ..., p.data -= ...)
        self.t += 1
        beta1, beta2 = self.betas
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            g = p.grad.data + self.weight_decay * p.data
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * g * g
            m_hat = m / (1 - beta1 ** self.t)
            v_hat = v / (1 - beta2 ** self.t)
            p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
        # END SOLUTION
