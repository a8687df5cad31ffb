# libCacheSim oracleGeneral (24-byte records: u32 time s, u64 obj_id, u32 size, i64 next) -> Mooncake jsonl,
# one block (the object id) per request: the unit-size view of a storage trace. Usage: SRC DST
import struct, sys, json
src, dst = sys.argv[1], sys.argv[2]
data = open(src, 'rb').read()
with open(dst, 'w') as f:
    for off in range(0, len(data) - len(data) % 24, 24):
        t, oid, size, nxt = struct.unpack_from('<IQIq', data, off)
        f.write('{"timestamp":%d,"input_length":512,"output_length":0,"hash_ids":[%d]}\n' % (t * 1000, oid))
