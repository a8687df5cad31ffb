"""Engine plug-ins over ``mcos.Client`` (pure Python, no engine import needed to load them):

- ``mcos.plugins.sglang_hicache.McosHiCacheStorage``: an SGLang HiCache storage backend;
- ``mcos.plugins.lmcache_l2.McosL2Plugin``: an LMCache MP-mode ``native_plugin`` L2 adapter;
- ``mcos.plugins.kv_events.KvEventPublisher``: vLLM-shaped KV events over ZMQ.

Every plug-in turns a failed load into a miss (the engine recomputes) and counts it; none
raises from a call where the engine expects a miss, and no batch call returns None.
"""
