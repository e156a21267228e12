// sort.cu — CUB's radix sort of int32 (key, value) pairs, for the embedding backward's grouping
// by token. A file of its own: CUB's headers declare a namespace `cuda`, the name of the
// backend's state in cuda_common.cuh.
#include <cub/device/device_radix_sort.cuh>
#include <stdint.h>

// Sorts n pairs by key, keeping the input order among equal keys (LSD radix sort is stable),
// on stream. CUB's workspace is work (*work_bytes); with work NULL only *work_bytes is set.
cudaError_t sort_pairs(void *work, size_t *work_bytes, const int32_t *keys, int32_t *keys_out, const int32_t *values,
                       int32_t *values_out, int n, cudaStream_t stream) {
    return cub::DeviceRadixSort::SortPairs(work, *work_bytes, keys, keys_out, values, values_out, n, 0, 32, stream);
}
