// MCOS GPU kernels, compiled at start-up with NVRTC (no headers needed).
//
// mcos_gather   moves a batch of scattered spans (host <-> HBM, HBM <-> HBM) in one launch and
//               folds what it read and, on request, what landed (re-read by another warp after a
//               barrier). The fold is fold64 of crates/mcos-tiers/src/fold.rs.
// mcos_fold     folds a batch of spans (checks destinations written by the copy engines).
// mcos_gemv_bf16, mcos_attend: one decode layer of the benchmark (weights GEMV, attention over
//               the layer's KV blocks).

typedef unsigned long long u64;
typedef unsigned int u32;

// Matches cuda::gather::Span (#[repr(C)], 24 bytes).
struct McosSpan {
    u64 src;   // device-visible address of the first source byte
    u64 dst;   // device-visible address of the first destination byte
    u32 len;   // bytes, a multiple of 16
    u32 flags; // MCOS_REREAD_DST
};

#define MCOS_REREAD_DST 1u
#define MCOS_THREADS 256
#define MCOS_WARPS (MCOS_THREADS / 32)

#if defined(__CUDACC_RTC__) || defined(__CUDA_ARCH__)
// Load that bypasses every cache level ("fetch again"): re-reads what reached memory.
#define MCOS_LOAD_CV(v, p)                                                              \
    asm volatile("ld.global.cv.v4.u32 {%0,%1,%2,%3}, [%4];"                             \
                 : "=r"((v).x), "=r"((v).y), "=r"((v).z), "=r"((v).w) : "l"(p))
#else
#define MCOS_LOAD_CV(v, p) ((v) = *(p))
#endif

__device__ __forceinline__ u64 mcos_fold_chunk(uint4 v, u64 chunk) {
    const u64 w0 = ((u64)v.y << 32) | (u64)v.x;
    const u64 w1 = ((u64)v.w << 32) | (u64)v.z;
    return w0 * (4ull * chunk + 1ull) + w1 * (4ull * chunk + 3ull);
}

__device__ __forceinline__ u64 mcos_warp_sum(u64 v) {
    for (int off = 16; off > 0; off >>= 1) {
        v += __shfl_down_sync(0xffffffffu, v, off);
    }
    return v;
}

// Sum of v over the block, valid in thread 0. Every thread of the block must call it.
__device__ u64 mcos_block_sum(u64 v, u64* scratch) {
    v = mcos_warp_sum(v);
    const u32 lane = threadIdx.x & 31u;
    const u32 warp = threadIdx.x >> 5;
    if (lane == 0) {
        scratch[warp] = v;
    }
    __syncthreads();
    u64 total = 0;
    if (threadIdx.x == 0) {
        for (u32 w = 0; w < (blockDim.x + 31u) / 32u; ++w) {
            total += scratch[w];
        }
    }
    __syncthreads();
    return total;
}

// One CUDA block per span at a time (grid-stride over spans). sums[2s] is the fold of the bytes
// read, sums[2s + 1] the fold of the destination re-read (0 without MCOS_REREAD_DST). When
// mismatches is not null (device memory only: atomics on mapped host memory are not atomic over
// PCIe), a span whose two folds differ adds 1 to it. When probe is not null, block 0 first
// writes probe_value there (mapped host memory, a plain store): the first byte is about to move.
extern "C" __global__ void __launch_bounds__(MCOS_THREADS)
mcos_gather(const McosSpan* __restrict__ spans, u32 n, u64* __restrict__ sums,
            u32* __restrict__ mismatches, volatile u32* probe, u32 probe_value) {
    __shared__ u64 scratch[MCOS_WARPS];
    if (probe != 0 && blockIdx.x == 0 && threadIdx.x == 0) {
        *probe = probe_value;
        __threadfence_system();
    }
    const u32 bd = blockDim.x;
    for (u32 s = blockIdx.x; s < n; s += gridDim.x) {
        const McosSpan sp = spans[s];
        const uint4* src = (const uint4*)sp.src;
        uint4* dst = (uint4*)sp.dst;
        const u32 chunks = sp.len / 16u;
        u64 read_sum = 0;
        u32 c = threadIdx.x;
        // Four loads in flight per thread before the stores: the host link's latency is
        // microseconds, so parallelism hides it.
        for (; c + 3u * bd < chunks; c += 4u * bd) {
            const uint4 v0 = src[c];
            const uint4 v1 = src[c + bd];
            const uint4 v2 = src[c + 2u * bd];
            const uint4 v3 = src[c + 3u * bd];
            dst[c] = v0;
            dst[c + bd] = v1;
            dst[c + 2u * bd] = v2;
            dst[c + 3u * bd] = v3;
            read_sum += mcos_fold_chunk(v0, c) + mcos_fold_chunk(v1, c + bd) +
                        mcos_fold_chunk(v2, c + 2u * bd) + mcos_fold_chunk(v3, c + 3u * bd);
        }
        for (; c < chunks; c += bd) {
            const uint4 v = src[c];
            dst[c] = v;
            read_sum += mcos_fold_chunk(v, c);
        }
        u64 back_sum = 0;
        if (sp.flags & MCOS_REREAD_DST) {
            // After the barrier every store of the block is visible to the block; each thread
            // re-reads chunks another warp wrote, from memory, not from a cache.
            __threadfence();
            __syncthreads();
            for (u32 r = (threadIdx.x + 32u) % bd; r < chunks; r += bd) {
                uint4 v;
                MCOS_LOAD_CV(v, dst + r);
                back_sum += mcos_fold_chunk(v, r);
            }
        }
        const u64 read_total = mcos_block_sum(read_sum, scratch);
        const u64 back_total = mcos_block_sum(back_sum, scratch);
        if (threadIdx.x == 0) {
            sums[2u * s] = read_total;
            sums[2u * s + 1u] = back_total;
            if (mismatches != 0 && (sp.flags & MCOS_REREAD_DST) && read_total != back_total) {
                atomicAdd(mismatches, 1u);
            }
        }
    }
}

// sums[2s] = fold of span s's source bytes (read from memory); sums[2s + 1] = 0.
extern "C" __global__ void __launch_bounds__(MCOS_THREADS)
mcos_fold(const McosSpan* __restrict__ spans, u32 n, u64* __restrict__ sums) {
    __shared__ u64 scratch[MCOS_WARPS];
    for (u32 s = blockIdx.x; s < n; s += gridDim.x) {
        const McosSpan sp = spans[s];
        const uint4* src = (const uint4*)sp.src;
        const u32 chunks = sp.len / 16u;
        u64 sum = 0;
        for (u32 c = threadIdx.x; c < chunks; c += blockDim.x) {
            uint4 v;
            MCOS_LOAD_CV(v, src + c);
            sum += mcos_fold_chunk(v, c);
        }
        const u64 total = mcos_block_sum(sum, scratch);
        if (threadIdx.x == 0) {
            sums[2u * s] = total;
            sums[2u * s + 1u] = 0;
        }
    }
}

__device__ __forceinline__ float mcos_bf16(u32 bits16) {
    return __uint_as_float(bits16 << 16);
}

__device__ __forceinline__ float mcos_dot8(uint4 w, const float* x) {
    return mcos_bf16(w.x & 0xffffu) * x[0] + mcos_bf16(w.x >> 16) * x[1] +
           mcos_bf16(w.y & 0xffffu) * x[2] + mcos_bf16(w.y >> 16) * x[3] +
           mcos_bf16(w.z & 0xffffu) * x[4] + mcos_bf16(w.z >> 16) * x[5] +
           mcos_bf16(w.w & 0xffffu) * x[6] + mcos_bf16(w.w >> 16) * x[7];
}

// y = W x for W rows x cols bf16 row-major (cols a multiple of 8), one warp per row.
extern "C" __global__ void __launch_bounds__(MCOS_THREADS)
mcos_gemv_bf16(const unsigned short* __restrict__ w, const float* __restrict__ x,
               float* __restrict__ y, u32 rows, u32 cols) {
    const u32 lane = threadIdx.x & 31u;
    const u32 warps = gridDim.x * (blockDim.x >> 5);
    for (u32 row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); row < rows;
         row += warps) {
        const uint4* wr = (const uint4*)(w + (u64)row * cols);
        float acc = 0.0f;
        for (u32 c = lane; c < cols / 8u; c += 32u) {
            acc += mcos_dot8(wr[c], x + 8u * c);
        }
        for (int off = 16; off > 0; off >>= 1) {
            acc += __shfl_down_sync(0xffffffffu, acc, off);
        }
        if (lane == 0) {
            y[row] = acc;
        }
    }
}

// Attention of one query token over a layer's KV blocks. blocks[b] is the device address of
// a frame: a 64-byte MCOS header, then K (tokens x heads x dim bf16), then V (same shape).
// Warp h of each CUDA block handles head h of one KV block: per token, score = q_h . k / sqrt(dim),
// p = exp(score); it accumulates p * v and p, and adds them to out[h * (dim + 1) ...] with atomics.
// dim is a multiple of 32 and at most 256; heads at most MCOS_WARPS.
extern "C" __global__ void __launch_bounds__(MCOS_THREADS)
mcos_attend(const u64* __restrict__ blocks, u32 n, const float* __restrict__ q,
            float* __restrict__ out, u32 tokens, u32 heads, u32 dim) {
    const u32 lane = threadIdx.x & 31u;
    const u32 h = threadIdx.x >> 5;
    if (h >= heads) {
        return;
    }
    const u32 per_lane = dim / 32u;
    const float scale = rsqrtf((float)dim);
    for (u32 b = blockIdx.x; b < n; b += gridDim.x) {
        const unsigned short* k = (const unsigned short*)(blocks[b] + 64ull);
        const unsigned short* v = k + (u64)tokens * heads * dim;
        float acc[8];
        for (u32 i = 0; i < 8u; ++i) {
            acc[i] = 0.0f;
        }
        float psum = 0.0f;
        for (u32 t = 0; t < tokens; ++t) {
            const u64 base = ((u64)t * heads + h) * dim;
            float part = 0.0f;
            for (u32 i = 0; i < per_lane && i < 8u; ++i) {
                const u32 d = lane + 32u * i;
                part += mcos_bf16(k[base + d]) * q[h * dim + d];
            }
            for (int off = 16; off > 0; off >>= 1) {
                part += __shfl_xor_sync(0xffffffffu, part, off);
            }
            const float p = __expf(part * scale);
            psum += p;
            for (u32 i = 0; i < per_lane && i < 8u; ++i) {
                acc[i] += p * mcos_bf16(v[base + lane + 32u * i]);
            }
        }
        float* o = out + (u64)h * (dim + 1u);
        for (u32 i = 0; i < per_lane && i < 8u; ++i) {
            atomicAdd(o + lane + 32u * i, acc[i]);
        }
        if (lane == 0) {
            atomicAdd(o + dim, psum);
        }
    }
}
