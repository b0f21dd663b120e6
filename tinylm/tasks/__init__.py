"""The tasks the one Trainer (tinylm.train) runs: each supplies a model, its batches, its loss
and its evaluation, with a config dataclass that extends TrainConfig.

    lm        LanguageModeling (LMConfig)          causal LM: GPT, LSTM or RNN      `tinylm train`
    mlm       MaskedLM (PretrainConfig)            BERT's MLM + NSP                 `tinylm pretrain`
    seq2seq   Translation (Seq2SeqTrainConfig)     encoder-decoder, numbers task    train_seq2seq()
    classify  Classification (FinetuneConfig)      fine-tuning three ways, LSTM     `tinylm finetune`
    distill   Distillation (DistillConfig)         knowledge distillation           `tinylm compress --distill-from`

Adding a task = one module here: a config (TrainConfig + its fields) and a Task subclass.
"""
