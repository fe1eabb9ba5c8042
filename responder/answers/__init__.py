"""How an OCSP request becomes an answer: a chain of sources, one per module.

answer.py    the immutable Question, the Answer, the typed errors (TryLater, Unauthorized)
issuers.py   IssuerRuntime: an issuer as the chain serves it
filter.py    IssuerFilter: which issuer, or unauthorized
cache.py     AnswerCache and CachedSource: answers and records in memory
arena.py     Arena: the host's shared answer cache of GET answers, read in place
presigned.py MissBatcher and PresignedSource: pre-signed answers from the store
live.py      LiveSigner: signed now, coalesced, written back
shedding.py  LoopLag: when live signing is refused
inline.py    InlineAnswers: what the chain answers without waiting (the reactor's POSTs)
chain.py     build_chain: the only place they meet
"""
