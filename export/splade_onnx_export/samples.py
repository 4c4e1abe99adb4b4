"""Built-in parity texts: mixed lengths, scripts and oddities, so every export is checked on a padded batch."""

PARITY_TEXTS = [
    "what is splade?",
    "a",
    "SPLADE expands a text into a sparse vector over the vocabulary; each weight is log(1 + relu(logit)).",
    "The quick brown fox jumps over the lazy dog. " * 3,
    "희소 검색 모델은 어휘 공간에서 문서를 표현합니다. 한국어 문장도 잘 처리되어야 합니다.",
    "def max_pool(x, mask):\n    return (x * mask[..., None]).max(axis=1)  # numpy 🐍🚀",
    "Emoji only: 😀😃😄😁 and mixed scripts: Ελληνικά, русский, العربية, 日本語, हिन्दी.",
    "Aspirin inhibits cyclooxygenase enzymes, reducing prostaglandin synthesis and thereby inflammation, "
    "fever and pain; low doses are used to prevent cardiovascular events in patients at high risk. " * 8,
    "Q: 2+2? A: 4",
    "Long document. " + " ".join(f"token{i} word{i % 17} science{i % 5}" for i in range(300)),
    "   leading and trailing whitespace   ",
    "NUL\x00 and control\x07 characters, combining marks: e\u0301 a\u0308, right-to-left: שלום עולם",
]
