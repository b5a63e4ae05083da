untrusted comment: verify with key.pub
RWQpa5B/aCxqAQTH0Tp4HNVEhhKjkMFUvt22ccUVFL5Vu4goYOVvHrbVCrjNEH3BBGU4h/ByRISHMHVAYbr2GNZYkRPttSrT2gU=
Vestige seed: the quick brown fox jumps over the lazy dog. 0123456789