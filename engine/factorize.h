// factorize.h — `model factorize rank=R`: a new model whose every block matrix is the best
// rank-R approximation (truncated SVD) of the source's W, with the error that costs; rank=0
// forms every W of a factorized model (the dense model it computes).
#pragma once
#include "err.h"
#include "model.h"

// One matrix of the report: ‖W − A′B′ᵀ‖_F / ‖W‖_F (0 when W = 0), from the singular values.
typedef struct FactorizeError {
    char name[64];        // "blocks.0.attn.wq" (the matrix W, without .A/.B)
    int rows, cols;       // W is rows×cols (out×in)
    int source_rank;      // 0: the source was dense; else its factor rank
    double rel_error;
} FactorizeError;

typedef struct FactorizeReport {
    int n;                // 7 per layer
    FactorizeError *items; // malloc'ed, in tensor-table order; free with factorize_report_free
    double worst, mean;   // over items
} FactorizeReport;

// Build *out (same config, rank = R, same backend) from src, which may be dense or factorized
// (then W = A·Bᵀ is formed on the host). attention wq wk wv wo and mlp w1 w2 w3 are truncated
// by SVD (A = U√S, B = V√S); embed, head and the norm gains are copied. src is not modified;
// *out is written only on success. rep may be NULL. 1 ≤ R ≤ min(out, in) of every matrix, or
// R = 0: a factorized src made dense, every W = A·Bᵀ formed (exact: each error 0).
int model_factorize(const Model *src, int rank, Model *out, FactorizeReport *rep, Err *err);
void factorize_report_free(FactorizeReport *rep);
