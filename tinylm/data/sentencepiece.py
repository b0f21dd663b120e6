"""SentencePiece tokenizers (Llama 2's, Mistral's, T5's tokenizer.model), read and run as the
sentencepiece library runs them, with no dependency on it.

A tokenizer.model file is one protobuf message, ModelProto (sentencepiece_model.proto): the pieces
(each a string, a score and a type), the trainer's settings (BPE or unigram, byte fallback, the
special ids) and the normaliser's. Encoding a text takes three steps:

1. Normalise (SentencePieceTokenizer.normalize): map each character by the file's precompiled
   rules (empty for "identity", NFKC-based for "nmt_nfkc"); drop leading, trailing and repeated
   spaces (remove_extra_whitespaces); put one space in front (add_dummy_prefix); write every space
   as "▁" (U+2581, escape_whitespaces). "Hello  world" -> "▁Hello▁world".
2. Segment the normalised text into pieces of the vocabulary:
   BPE: start from single characters and repeatedly merge the adjacent pair whose joined string is
     a piece with the highest score (the leftmost pair among equals), until no pair is a piece.
   unigram: the segmentation with the highest total score, found by Viterbi:
     best(e) = max over pieces text[s:e] of best(s) + score(text[s:e]), best(0) = 0.
   A character that no piece covers is the unknown piece.
3. Unknown pieces become ids: with byte fallback, the UTF-8 bytes of their characters as the
   pieces <0x00>..<0xFF>; without it, the unknown id (one for each run of unknown characters).

Decoding joins the pieces, writes "▁" as a space, drops the dummy prefix's space at the start,
reassembles byte pieces as UTF-8 (a byte that is no part of a character becomes "�") and drops
control pieces (<s>, </s>). The unknown id decodes to "�", as tinylm's other tokenizers decode
theirs (the sentencepiece library prints " ⁇ ").
"""
import base64
import heapq
import os
import struct

import numpy as np

from ..files import read_bytes
from .tokenizers import UNK, Tokenizer, _check_text

SPACE = "\u2581"  # "▁", how SentencePiece writes a space inside pieces

# --- the protobuf wire format ------------------------------------------------------------------
# A message is a sequence of fields. Each starts with a key, the varint (field number << 3) | wire
# type; the wire type says how the value is written:
#   0  a varint (int32, bool, enum): 7 bits a byte, lowest first; a byte with its high bit set
#      has another after it. A negative int32 is the 10-byte varint of its 64-bit two's complement.
#   1  8 bytes (fixed64, double)                5  4 bytes (fixed32, float: little-endian IEEE)
#   2  a varint length, then that many bytes: a string (UTF-8), bytes, or a nested message
# A field absent from the message has its default; a field the reader does not know is skipped.


def read_varint(data, pos):
    """(value, position after it) of the varint that starts at data[pos]."""
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("a number runs past the end of the data")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if byte < 0x80:
            return value, pos
        if shift >= 70:
            raise ValueError(f"a number at byte {pos - 10} is longer than 10 bytes")


def read_fields(data):
    """The fields of a protobuf message, in order: [(field number, wire type, value)], the value an
    int for wire type 0 and the bytes for wire types 1, 2 and 5."""
    fields, pos = [], 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError(f"field number 0 at byte {pos - 1}")
        if wire == 0:
            value, pos = read_varint(data, pos)
        elif wire in (1, 2, 5):
            size, pos = read_varint(data, pos) if wire == 2 else ({1: 8, 5: 4}[wire], pos)
            if pos + size > len(data):
                raise ValueError(f"field {number} needs {size} bytes at byte {pos}, past the end of the data")
            value, pos = bytes(data[pos:pos + size]), pos + size
        else:
            raise ValueError(f"field {number} has wire type {wire}, which is none of 0, 1, 2, 5")
        fields.append((number, wire, value))
    return fields


# The fields tinylm reads, per message: number -> (name, type). The types and their wire types:
# "int32", "bool", "enum" 0; "float" 5; "string", "bytes" 2; a dict is a nested message (2); a
# list [message] a repeated one. Field numbers from sentencepiece_model.proto.
_PIECE = {1: ("piece", "string"), 2: ("score", "float"), 3: ("type", "enum")}
_TRAINER = {3: ("model_type", "enum"), 24: ("treat_whitespace_as_suffix", "bool"), 35: ("byte_fallback", "bool"),
            40: ("unk_id", "int32"), 41: ("bos_id", "int32"), 42: ("eos_id", "int32"), 43: ("pad_id", "int32")}
_NORMALIZER = {1: ("name", "string"), 2: ("precompiled_charsmap", "bytes"), 3: ("add_dummy_prefix", "bool"),
               4: ("remove_extra_whitespaces", "bool"), 5: ("escape_whitespaces", "bool")}
_MODEL = {1: ("pieces", [_PIECE]), 2: ("trainer_spec", _TRAINER), 3: ("normalizer_spec", _NORMALIZER),
          5: ("denormalizer_spec", _NORMALIZER)}
# proto2 defaults of the fields above
_DEFAULTS = {id(_PIECE): {"score": 0.0, "type": 1},
             id(_TRAINER): {"model_type": 1, "treat_whitespace_as_suffix": False, "byte_fallback": False,
                            "unk_id": 0, "bos_id": 1, "eos_id": 2, "pad_id": -1},
             id(_NORMALIZER): {"name": "", "precompiled_charsmap": b"", "add_dummy_prefix": True,
                               "remove_extra_whitespaces": True, "escape_whitespaces": True}}


def read_message(data, schema, where="the message", merge_into=None):
    """The fields of `schema` in the protobuf message `data`, as a dict (absent ones at their
    defaults, or at merge_into's values); fields not in the schema are skipped. As protobuf does, a
    field given twice keeps its last value, and a nested message given twice is merged."""
    if merge_into is not None:
        out = merge_into
    else:
        out = dict(_DEFAULTS.get(id(schema), {}))
        for name, kind in schema.values():
            if isinstance(kind, list):
                out[name] = []
            elif isinstance(kind, dict):
                out[name] = read_message(b"", kind)
    for number, wire, value in read_fields(data):
        if number not in schema:
            continue
        name, kind = schema[number]
        here = f"{where}, field {number} ({name})"
        expected = 2 if isinstance(kind, (list, dict)) or kind in ("string", "bytes") else 5 if kind == "float" else 0
        if wire != expected:
            raise ValueError(f"{here} has wire type {wire}, expected {expected}")
        if isinstance(kind, list):
            out[name].append(read_message(value, kind[0], f"{here} {len(out[name])}"))
        elif isinstance(kind, dict):
            read_message(value, kind, here, merge_into=out[name])
        elif kind == "string":
            try:
                out[name] = value.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{here} is not UTF-8 text") from None
        elif kind == "bytes":
            out[name] = value
        elif kind == "float":
            out[name] = struct.unpack("<f", value)[0]
        elif kind == "bool":
            out[name] = value != 0
        else:  # int32 and enum: the low 32 bits, signed
            value &= 0xFFFFFFFF
            out[name] = value - (1 << 32) if value >= 1 << 31 else value
    return out


# --- the precompiled normalisation rules ------------------------------------------------------
class CharsMap:
    """SentencePiece's precompiled normalisation rules (NormalizerSpec.precompiled_charsmap): which
    strings of the input become which strings. The blob is a little-endian uint32 n, then a trie of
    the input strings' UTF-8 bytes in n bytes, then the replacements, each ended by a zero byte.

    The trie is a Darts-clone double array of uint32 units. From unit u:
        label  = u & 0x800000FF   (the byte that leads into this node; bit 31 marks a value unit)
        leaf   = (u >> 8) & 1     (a key ends here: the unit at node ^ offset holds its value)
        offset = (u >> 10) << ((u & 0x200) >> 6)      value = u & 0x7FFFFFFF
    Walking bytes b: start at node 0, then node = node ^ offset(unit[node]) ^ b each step, while
    unit[node]'s label is b. The value of a key is where its replacement starts.
    """

    def __init__(self, blob):
        if len(blob) <= 4:
            raise ValueError("its precompiled_charsmap is too short to hold rules")
        (size,) = struct.unpack_from("<I", blob)
        if not 0 < size < len(blob) or size % 4:
            raise ValueError(f"its precompiled_charsmap's trie size {size} does not fit its {len(blob)} bytes")
        self.units = np.frombuffer(blob, dtype="<u4", count=size // 4, offset=4).tolist()
        self.replacements = blob[4 + size:]

    def longest_match(self, data, pos):
        """(length, replacement bytes) of the longest rule matching data[pos:], or None."""
        units, best = self.units, None
        node = (units[0] >> 10) << ((units[0] & 0x200) >> 6)
        for i in range(pos, len(data)):
            node ^= data[i]
            if node >= len(units) or units[node] & 0x800000FF != data[i]:
                break
            unit = units[node]
            node ^= (unit >> 10) << ((unit & 0x200) >> 6)
            if unit >> 8 & 1:
                start = units[node] & 0x7FFFFFFF
                best = (i + 1 - pos, self.replacements[start:self.replacements.index(0, start)])
        return best


def _one_char(data, pos):
    """(bytes, length) of the UTF-8 character at data[pos]; for a byte that starts no valid
    character, U+FFFD and 1, as SentencePiece reads malformed input."""
    lead = data[pos]
    size = 1 if lead < 0xC0 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    try:
        data[pos:pos + size].decode("utf-8")
        return data[pos:pos + size], size
    except UnicodeDecodeError:
        return "\ufffd".encode("utf-8"), 1


# --- the tokenizer -----------------------------------------------------------------------------
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6  # ModelProto.SentencePiece.Type
TYPES = {NORMAL: "normal", UNKNOWN: "unknown", CONTROL: "control", USER_DEFINED: "user_defined",
         UNUSED: "unused", BYTE: "byte"}
MODEL_TYPES = {1: "unigram", 2: "bpe"}  # TrainerSpec.ModelType (3 word and 4 char: not read)
_NORMALIZER_FIELDS = ("name", "add_dummy_prefix", "remove_extra_whitespaces", "escape_whitespaces")
_FLT_MIN = np.float32(np.finfo(np.float32).tiny)  # C's FLT_MIN, the smallest normal float32
_UNK_PENALTY = np.float32(10.0)  # unigram: the unknown piece scores 10 below the lowest piece


class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece BPE or unigram model (see the module docstring for the algorithm).

    pieces: [(piece, score, type)], one per id, type a name in TYPES ("normal", "unknown",
    "control", "user_defined", "unused", "byte"). Exactly one piece is "unknown". "control" pieces
    (<s>, </s>) are never produced from text; "user_defined" ones are always kept whole; "unused"
    ones are never produced (BPE splits them back into the pieces they were merged from); "byte"
    pieces <0x00>..<0xFF> (all 256, with byte_fallback) spell characters no piece covers.
    normalizer: {"name", "add_dummy_prefix", "remove_extra_whitespaces", "escape_whitespaces"};
    charsmap: the precompiled rules (bytes, empty for none).

    unk_id, bos_id, eos_id, pad_id: the ids of <unk>, <s>, </s>, <pad> (None where the model has
    none); special_tokens: {piece: id} of the control pieces. encode adds no <s>; input_ids does
    when add_bos is set (tinylm.models.pretrained sets it where the folder asks for it, as Llama
    2's tokenizer_config.json does).
    """
    kind, field = "sentencepiece", "pieces"

    def __init__(self, pieces, model_type="bpe", byte_fallback=False, normalizer=None, charsmap=b"",
                 bos_id=None, eos_id=None, pad_id=None):
        if model_type not in MODEL_TYPES.values():
            raise ValueError(f"model_type {model_type!r} is not read by tinylm; expected 'bpe' or 'unigram'")
        if not isinstance(pieces, (list, tuple)) or not pieces:
            raise ValueError("'pieces' must be a non-empty list of [piece, score, type]")
        names = {name: code for code, name in TYPES.items()}
        self.pieces, self.scores, self.types = [], [], []
        for i, entry in enumerate(pieces):
            if (not isinstance(entry, (list, tuple)) or len(entry) != 3 or not isinstance(entry[0], str)
                    or not entry[0] or not isinstance(entry[1], (int, float)) or entry[2] not in names):
                raise ValueError(f"piece {i} must be [a non-empty string, a score, one of {sorted(names)}], "
                                 f"got {entry!r}")
            self.pieces.append(entry[0])
            self.scores.append(float(np.float32(entry[1])))  # the file's float32, exactly
            self.types.append(names[entry[2]])
        self.model_type, self.byte_fallback = model_type, bool(byte_fallback)
        self.normalizer = {"name": "", "add_dummy_prefix": True, "remove_extra_whitespaces": True,
                           "escape_whitespaces": True, **(normalizer or {})}
        unknown = set(self.normalizer) - set(_NORMALIZER_FIELDS)
        if unknown:
            raise ValueError(f"unknown normalizer setting {min(unknown)!r}; expected {_NORMALIZER_FIELDS}")
        self.charsmap = bytes(charsmap)
        self._rules = CharsMap(self.charsmap) if self.charsmap else None

        # Like the sentencepiece library: normal, user-defined and unused pieces are found in text;
        # unknown, control and byte pieces are reserved, found only by id.
        self._found, self._reserved, self.byte_ids = {}, {}, {}
        for i, (piece, kind) in enumerate(zip(self.pieces, self.types)):
            table = self._found if kind in (NORMAL, USER_DEFINED, UNUSED) else self._reserved
            if piece in table:
                raise ValueError(f"piece {i}, {piece!r}, is listed twice")
            table[piece] = i
            if kind == BYTE:
                byte = _byte_of(piece)
                if byte is None:
                    raise ValueError(f"piece {i}, {piece!r}, is a byte piece but not one of <0x00>..<0xFF>")
                self.byte_ids[byte] = i
        unknowns = [i for i, kind in enumerate(self.types) if kind == UNKNOWN]
        if len(unknowns) != 1:
            raise ValueError(f"a SentencePiece model has exactly one unknown piece; this one has {len(unknowns)}")
        self.unk_id = unknowns[0]
        if self.byte_fallback and len(self.byte_ids) != 256:
            raise ValueError(f"byte_fallback needs the 256 byte pieces <0x00>..<0xFF>, there are {len(self.byte_ids)}")
        if not self.byte_fallback and self.byte_ids:
            raise ValueError("the model has byte pieces but byte_fallback is off")
        self._byte_of = {i: b for b, i in self.byte_ids.items()}
        self.bos_id, self.eos_id, self.pad_id = (
            i if isinstance(i, int) and 0 <= i < len(self.pieces) and self.types[i] == CONTROL else None
            for i in (bos_id, eos_id, pad_id))
        self.special_tokens = {p: i for i, (p, kind) in enumerate(zip(self.pieces, self.types)) if kind == CONTROL}
        self._user_defined = {p for p, kind in zip(self.pieces, self.types) if kind == USER_DEFINED}
        self._user_lengths = sorted({len(p) for p in self._user_defined}, reverse=True)
        self._user_bytes = {p.encode("utf-8") for p in self._user_defined}
        self._user_byte_lengths = sorted({len(p) for p in self._user_bytes}, reverse=True)
        self._longest = max(len(p) for p in self._found) if self._found else 0
        normal = [s for s, kind in zip(self.scores, self.types) if kind == NORMAL]
        self._min_score = np.float32(min(normal)) if normal else np.float32(np.finfo(np.float32).max)
        self._max_score = max(np.float32(max(normal)), _FLT_MIN) if normal else _FLT_MIN

    # --- reading and writing ----------------------------------------------------------------
    @classmethod
    def from_model_file(cls, path):
        """The tokenizer of a SentencePiece model file (tokenizer.model). A file that is not one, or
        that uses what tinylm does not compute (word or char models, whitespace as a suffix, a
        denormaliser), is refused in one line naming the file."""
        path = os.fspath(path)
        data = read_bytes(path, "tokenizer file")
        try:
            model = read_message(data, _MODEL, "ModelProto")
            trainer, normalizer = model["trainer_spec"], model["normalizer_spec"]
            if not model["pieces"]:
                raise ValueError("it has no pieces")
            if trainer["model_type"] not in MODEL_TYPES:
                raise ValueError(f"its model_type is {trainer['model_type']} (1 unigram and 2 bpe are read)")
            if trainer["treat_whitespace_as_suffix"]:
                raise ValueError("it sets treat_whitespace_as_suffix, which tinylm does not compute")
            if model["denormalizer_spec"]["precompiled_charsmap"]:
                raise ValueError("it has denormalisation rules, which tinylm does not compute")
            for i, p in enumerate(model["pieces"]):
                if p["type"] not in TYPES:
                    raise ValueError(f"piece {i} has type {p['type']}, none of {sorted(TYPES)}")
            return cls([(p["piece"], p["score"], TYPES[p["type"]]) for p in model["pieces"]],
                       model_type=MODEL_TYPES[trainer["model_type"]], byte_fallback=trainer["byte_fallback"],
                       normalizer={k: normalizer[k] for k in _NORMALIZER_FIELDS},
                       charsmap=normalizer["precompiled_charsmap"],
                       bos_id=trainer["bos_id"], eos_id=trainer["eos_id"], pad_id=trainer["pad_id"])
        except ValueError as e:
            raise ValueError(f"{path} is not a SentencePiece model (a ModelProto protobuf, as tokenizer.model "
                             f"holds) tinylm reads: {e}") from None

    @classmethod
    def _from_fields(cls, d):
        charsmap = d.get("charsmap", "")
        if not isinstance(charsmap, str):
            raise ValueError("'charsmap' must be a base64 string")
        return cls(d["pieces"], model_type=d.get("model_type"), byte_fallback=d.get("byte_fallback", False) is True,
                   normalizer=d.get("normalizer"), charsmap=base64.b64decode(charsmap),
                   bos_id=d.get("bos_id"), eos_id=d.get("eos_id"), pad_id=d.get("pad_id"))

    def to_dict(self):
        d = {"kind": self.kind, "pieces": [[p, s, TYPES[t]] for p, s, t in zip(self.pieces, self.scores, self.types)],
             "model_type": self.model_type, "byte_fallback": self.byte_fallback, "normalizer": dict(self.normalizer),
             "bos_id": self.bos_id, "eos_id": self.eos_id, "pad_id": self.pad_id}
        if self.charsmap:
            d["charsmap"] = base64.b64encode(self.charsmap).decode("ascii")
        return self._with_bos(d)

    @property
    def vocab_size(self):
        return len(self.pieces)

    # --- encoding ---------------------------------------------------------------------------
    def normalize(self, text):
        """Step 1 of encode: the text as the model's pieces spell it ("▁" for spaces, by default).

        At each position the longest user-defined piece is kept as it is; else the longest rule
        of the charsmap replaces what it matches; else one character is copied. Spaces that the
        rules produce are dropped at the start, the end, and after a space
        (remove_extra_whitespaces); a dummy space goes in front (add_dummy_prefix)."""
        _check_text(text)
        spec = self.normalizer
        space = SPACE.encode("utf-8") if spec["escape_whitespaces"] else b" "
        data, pos, out = text.encode("utf-8", "surrogatepass"), 0, bytearray()
        prev_space = spec["remove_extra_whitespaces"]
        while prev_space and pos < len(data):  # skip the leading characters that normalise to one space
            piece, size = self._normalize_prefix(data, pos)
            if piece != b" ":
                break
            pos += size
        if pos == len(data):
            return ""
        if spec["add_dummy_prefix"]:
            out += space
        while pos < len(data):
            piece, size = self._normalize_prefix(data, pos)
            if prev_space:
                piece = piece.lstrip(b" ")
            if piece:
                out += piece.replace(b" ", space)
                prev_space = piece.endswith(b" ")
            if not spec["remove_extra_whitespaces"]:
                prev_space = False
            pos += size
        if spec["remove_extra_whitespaces"]:
            while out.endswith(space):
                del out[-len(space):]
        return out.decode("utf-8")

    def _normalize_prefix(self, data, pos):
        """(what data[pos:]'s first unit normalises to, its length in bytes): see normalize."""
        for size in self._user_byte_lengths:
            if data[pos:pos + size] in self._user_bytes:
                return data[pos:pos + size], size
        match = self._rules.longest_match(data, pos) if self._rules else None
        if match is not None:
            return match[1], match[0]
        return _one_char(data, pos)

    def _user_defined_at(self, text, pos):
        """The longest user-defined piece that text[pos:] starts with, or None."""
        for size in self._user_lengths:
            if text[pos:pos + size] in self._user_defined:
                return text[pos:pos + size]
        return None

    def _bpe(self, text):
        """Step 2, BPE: [(piece, id)] of the normalised text.

        The symbols start as the characters (user-defined pieces whole, and never merged). A heap
        holds every adjacent pair whose joined string is a piece, highest score first, leftmost
        first among equals. Popping a pair merges it, unless one of its symbols has changed since
        it was pushed (then the pair is gone); the merged symbol's new pairs are pushed. Symbols
        form a linked list (prev, nxt) so that a merge costs O(log n). An unused piece that a merge
        makes is split back into the two symbols it was made of."""
        if not text:
            return []
        symbols, frozen, pos = [], [], 0
        while pos < len(text):
            user = self._user_defined_at(text, pos)
            symbols.append(user or text[pos])
            frozen.append(user is not None)
            pos += len(symbols[-1])
        n = len(symbols)
        prev, nxt = list(range(-1, n - 1)), list(range(1, n + 1))
        nxt[-1] = -1
        heap, made_from = [], {}

        def push(left, right):
            if left < 0 or right < 0 or frozen[left] or frozen[right]:
                return
            joined = symbols[left] + symbols[right]
            i = self._found.get(joined)
            if i is not None:
                heapq.heappush(heap, (-self.scores[i], left, right, len(joined)))
                if self.types[i] == UNUSED:
                    made_from[joined] = (symbols[left], symbols[right])

        for i in range(1, n):
            push(i - 1, i)
        while heap:
            _, left, right, size = heapq.heappop(heap)
            if not symbols[left] or not symbols[right] or len(symbols[left]) + len(symbols[right]) != size:
                continue  # a symbol of this pair was merged into another since
            symbols[left], symbols[right] = symbols[left] + symbols[right], ""
            nxt[left] = nxt[right]
            if nxt[left] >= 0:
                prev[nxt[left]] = left
            push(prev[left], left)
            push(left, nxt[left])

        out = []

        def emit(piece):
            # a string is looked up among the reserved pieces first, as the library does
            i = self._reserved.get(piece, self._found.get(piece, self.unk_id))
            if self.types[i] == UNUSED and piece in made_from:
                for part in made_from[piece]:
                    emit(part)
            else:
                out.append((piece, i))
        i = 0
        while i >= 0:
            emit(symbols[i])
            i = nxt[i]
        return out

    def _unigram(self, text):
        """Step 2, unigram: [(piece, id)] of the normalised text, by Viterbi over the pieces'
        scores (their log probabilities).

        best[e] = (score, start, id) of the best segmentation of text[:e]: for each start s in
        order and each piece text[s:e] (unused pieces excluded), best(s) + score replaces best[e]
        if strictly greater, so among equal totals the first found (the longest last piece) wins.
        A user-defined piece scores len(its UTF-8) * max(normal scores, FLT_MIN) - 0.1. A character
        that starts no one-character piece is also the unknown piece, scored min(normal scores)
        - 10. All sums in float32, as the library's since version 0.2.2 (0.2.0 and 0.2.1 summed a
        piece's candidate in float64, where two segmentations with equal float32 totals, such as
        ** + *********** and *********** + **, can come out unequal and the other one win)."""
        n = len(text)
        best = [None] * (n + 1)
        best[0] = (0.0, -1, -1)
        unk_score = self._min_score - _UNK_PENALTY
        for start in range(n):
            base, single = np.float32(best[start][0]), False
            for end in range(start + 1, min(n, start + self._longest) + 1):
                i = self._found.get(text[start:end])
                if i is None or self.types[i] == UNUSED:
                    continue
                if self.types[i] == USER_DEFINED:
                    score = np.float32(len(text[start:end].encode("utf-8"))) * self._max_score - np.float32(0.1)
                else:
                    score = np.float32(self.scores[i])
                total = float(score + base)
                if best[end] is None or total > best[end][0]:
                    best[end] = (total, start, i)
                single = single or end == start + 1
            if not single:
                total = float(unk_score + base)
                if best[start + 1] is None or total > best[start + 1][0]:
                    best[start + 1] = (total, start, self.unk_id)
        out, end = [], n
        while end > 0:
            _, start, i = best[end]
            out.append((text[start:end], i))
            end = start
        return out[::-1]

    def encode(self, text):
        normalized = self.normalize(text)
        ids = []
        for piece, i in (self._bpe if self.model_type == "bpe" else self._unigram)(normalized):
            if i != self.unk_id:
                ids.append(i)
            elif self.byte_fallback:
                ids.extend(self.byte_ids[b] for b in piece.encode("utf-8"))
            elif not ids or ids[-1] != self.unk_id:  # one unknown id for a run of unknown pieces
                ids.append(i)
        return ids

    # --- decoding ---------------------------------------------------------------------------
    def decode(self, ids):
        """The text of `ids`: see the module docstring. At the start (until some text is out),
        a piece's leading "▁" is dropped: only the first one's without remove_extra_whitespaces,
        every one's with it (the normaliser never leaves a space at the start then)."""
        spec = self.normalizer
        strip = spec["add_dummy_prefix"] or spec["remove_extra_whitespaces"]
        out, run = [], bytearray()  # run: the bytes of consecutive byte pieces
        at_start, stripped = True, False
        for i in self._checked_ids(ids):
            if i in self._byte_of:
                run.append(self._byte_of[i])
                continue
            if run:
                out.append(_bytes_to_text(run))
                run.clear()
            if stripped or (at_start and any(out)):
                at_start = False
            stripped, kind, piece = False, self.types[i], self.pieces[i]
            if kind == CONTROL:
                continue
            if kind == UNKNOWN:
                out.append(UNK)
                continue
            if at_start and strip and piece.startswith(SPACE):
                piece = piece[1:]
                stripped = not spec["remove_extra_whitespaces"]
            out.append(piece.replace(SPACE, " "))
        if run:
            out.append(_bytes_to_text(run))
        return "".join(out)


def _byte_of(piece):
    """The byte value of a byte piece "<0x41>" -> 0x41 (two upper-case hex digits), else None."""
    if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
        digits = piece[3:5]
        if all(c in "0123456789ABCDEF" for c in digits):
            return int(digits, 16)
    return None


def _bytes_to_text(data):
    """UTF-8 bytes as text, each byte that is no part of a valid character as "�" (one per byte,
    as the sentencepiece library decodes byte pieces)."""
    text = bytes(data).decode("utf-8", "surrogateescape")  # a bad byte b -> the code point U+DC00 + b
    return "".join("\ufffd" if "\udc80" <= c <= "\udcff" else c for c in text)
