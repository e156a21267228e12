// test_ensemble.c — ensembles: K=1 equals plain training; WASH with p=0 equals independent
// training; a shuffle conserves every coordinate's multiset, follows the layer schedule and
// moves the optimizer moments with the values; PAPA α=1 makes the members equal; the averages
// of identical members return the member; probability averaging; factor vs product averaging
// under A→AQ, B→BQ; a short WASH vs independent run; and ensemble checkpoints: a bit-identical
// round trip, a bit-identical resume with WASH on, and bad ensemble metadata refused by name.
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>
#include "test.h"
#include "test_fixtures.h"

static ModelConfig micro_config(int rank) { return micro_config_layers(rank, 2); }
#include "../engine/ensemble.h"
#include "../engine/model_internal.h"
#include "../engine/rng.h"

static const Backend *be;

// Mostly next = 5·prev + 1 (mod vocab), one token in eight random (as test_optim.c).
static uint16_t store[6000];
static Dataset member_data(long n, int vocab) { return pattern_dataset(store, n, vocab); }

static OptimConfig adamw(void) {
    Err err;
    OptimConfig oc;
    optim_config_default(&oc, "adamw", &err);
    oc.lr = 1e-2f;
    oc.warmup = 5;
    return oc;
}

static float *host_params(const Model *m) {
    float *h = malloc(sizeof(float) * m->n_params);
    be->download(h, m->params, sizeof(float) * m->n_params);
    return h;
}

// K members with seeds base+i (init) and 100+base+i (data).
static int build(Ensemble *e, const ModelConfig *c, int k, int same_init, uint64_t base, const OptimConfig *oc, Err *err) {
    uint64_t is[ENSEMBLE_MAX_K], ds[ENSEMBLE_MAX_K];
    for (int i = 0; i < k; i++) is[i] = base + i, ds[i] = 100 + base + i;
    EnsembleSpec sp = {.k = k, .init_seeds = is, .data_seeds = ds, .same_init = same_init, .mix_seed = 5};
    return ensemble_build(e, c, be, oc, &sp, err);
}

static void test_k1_equals_plain_training(void) {
    Err err;
    ModelConfig c = micro_config(3);
    c.seed = 21;
    OptimConfig oc = adamw();
    Dataset ds = member_data(4000, c.vocab);
    Model m;
    Trainer tr;
    CHECK_OK(model_build(&m, &c, be, &err));
    CHECK_OK(trainer_build(&tr, &m, &oc, 77, &err));
    uint64_t is[1] = {21}, dseed[1] = {77};
    Ensemble e;
    EnsembleSpec sp = {.k = 1, .init_seeds = is, .data_seeds = dseed, .mix_seed = 3};
    CHECK_OK(ensemble_build(&e, &c, be, &oc, &sp, &err));
    EnsembleCoupling cp = ensemble_coupling_default();
    cp.method = ENSEMBLE_WASH;
    cp.p = 0.5f;
    CHECK_OK(ensemble_set_coupling(&e, &cp, &err));
    for (int i = 0; i < 6; i++) {
        StepStats a;
        EnsembleStepStats b;
        CHECK_OK(trainer_step(&tr, &ds, 2, 8, 2, &a, &err));
        CHECK_OK(ensemble_step(&e, &ds, 2, 8, 2, &b, &err));
        CHECK(a.loss == b.member[0].loss && a.loss == b.mean_loss, "step %d: plain loss %.9g, ensemble %.9g", i, a.loss,
              b.mean_loss);
        CHECK(b.exchanged == 0, "one member exchanges nothing (got %ld)", b.exchanged);
    }
    float *p = host_params(&m), *q = host_params(&e.members[0]);
    CHECK(memcmp(p, q, sizeof(float) * m.n_params) == 0, "K=1 ensemble parameters equal plain training's bit for bit");
    free(p);
    free(q);
    ensemble_free(&e);
    trainer_free(&tr);
    model_free(&m);
}

// A failure seen after member 1's update (a GPU fault) undoes member 0's update as well as
// its own, and member 2 draws its batches again: all stand at step 1 as before, and the next
// step is bit for bit the one an ensemble that never failed takes.
static const char *pending_failure;
static int adamw_calls, adamw_fail_at;
static const char *take_pending_failure(void) {
    const char *e = pending_failure;
    pending_failure = NULL;
    return e;
}
static void (*real_adamw_update)(float *, const float *, float *, float *, long, float, float, float, float, float,
                                 float, int);
static void adamw_counted(float *p, const float *g, float *m, float *v, long n, float lr, float b1, float b2, float eps,
                          float wd, float gs, int t) {
    real_adamw_update(p, g, m, v, n, lr, b1, b2, eps, wd, gs, t);
    if (++adamw_calls == adamw_fail_at) pending_failure = "k_adamw: an illegal memory access";
}

// Member 0 built from a trained model and its trainer goes on as that trainer would: the same
// losses and parameters, bit for bit (it restarted with zero moments and t = 0); the other
// members stand at its step.
static void test_member0_continues_the_trainer(void) {
    Err err;
    ModelConfig c = micro_config(3);
    c.seed = 21;
    OptimConfig oc = adamw();
    Dataset ds = member_data(4000, c.vocab);
    Model m;
    Trainer tr;
    CHECK_OK(model_build(&m, &c, be, &err));
    CHECK_OK(trainer_build(&tr, &m, &oc, 77, &err));
    for (int i = 0; i < 3; i++) CHECK_OK(trainer_step(&tr, &ds, 2, 8, 1, NULL, &err));
    uint64_t is[2] = {21, 22}, dseed[2] = {tr.data_rng, 78};
    Ensemble e;
    EnsembleSpec sp = {.k = 2, .init_seeds = is, .data_seeds = dseed, .from = &m, .from_trainer = &tr, .mix_seed = 3};
    CHECK_OK(ensemble_build(&e, &c, be, &oc, &sp, &err));
    CHECK(e.trainers[0].opt.t == 3 && e.trainers[0].step == 3 && e.trainers[1].step == 3 && e.trainers[1].opt.t == 0,
          "member 0 at t=3, step 3 (got t=%d, step %d); member 1 fresh at step 3 (t=%d, step %d)", e.trainers[0].opt.t,
          e.trainers[0].step, e.trainers[1].opt.t, e.trainers[1].step);
    for (int i = 0; i < 3; i++) {
        StepStats a;
        EnsembleStepStats b;
        CHECK_OK(trainer_step(&tr, &ds, 2, 8, 1, &a, &err));
        CHECK_OK(ensemble_step(&e, &ds, 2, 8, 1, &b, &err));
        CHECK(a.loss == b.member[0].loss, "step %d: the model's loss %.9g, member 0's %.9g", a.step, a.loss,
              b.member[0].loss);
    }
    float *p = host_params(&m), *q = host_params(&e.members[0]);
    CHECK(memcmp(p, q, sizeof(float) * m.n_params) == 0, "member 0's parameters equal the model's bit for bit");
    free(p);
    free(q);
    ensemble_free(&e);
    trainer_free(&tr);
    model_free(&m);
}

static void test_failed_member_update_undoes_the_step(void) {
    Err err;
    ModelConfig c = micro_config(3);
    OptimConfig oc = adamw();
    Dataset ds = member_data(4000, c.vocab);
    Backend faulty = *be;
    const Backend *real = be;
    faulty.take_error = take_pending_failure;
    real_adamw_update = be->adamw_update;
    faulty.adamw_update = adamw_counted;
    be = &faulty;
    Ensemble a, ref;
    CHECK_OK(build(&a, &c, 3, 0, 40, &oc, &err));
    CHECK_OK(build(&ref, &c, 3, 0, 40, &oc, &err));
    adamw_calls = 0, adamw_fail_at = -1;
    CHECK_OK(ensemble_step(&a, &ds, 2, 8, 1, NULL, &err));
    int per_member = adamw_calls / 3;
    CHECK_OK(ensemble_step(&ref, &ds, 2, 8, 1, NULL, &err));
    float *before[3];
    uint64_t rng[3];
    for (int i = 0; i < 3; i++) before[i] = host_params(&a.members[i]), rng[i] = a.trainers[i].data_rng;
    adamw_calls = 0, adamw_fail_at = per_member + 1;   // member 1's first tensor
    CHECK(ensemble_step(&a, &ds, 2, 8, 1, NULL, &err) != 0 && strstr(err.msg, "member 1") && strstr(err.msg, "undone"),
          "the failed update is reported: '%s'", err.msg);
    adamw_fail_at = -1;
    for (int i = 0; i < 3; i++) {
        float *now = host_params(&a.members[i]);
        CHECK(memcmp(now, before[i], sizeof(float) * a.members[i].n_params) == 0 && a.trainers[i].step == 1 &&
              a.trainers[i].opt.t == 1 && a.trainers[i].data_rng == rng[i],
              "member %d as before the step: parameters %s, step %d, t %d, data position %s", i,
              memcmp(now, before[i], sizeof(float) * a.members[i].n_params) ? "changed" : "same", a.trainers[i].step,
              a.trainers[i].opt.t, a.trainers[i].data_rng == rng[i] ? "kept" : "moved");
        free(now);
        free(before[i]);
    }
    CHECK(a.step == 1, "the ensemble stays at step 1 (%d)", a.step);
    CHECK_OK(ensemble_step(&a, &ds, 2, 8, 1, NULL, &err));
    CHECK_OK(ensemble_step(&ref, &ds, 2, 8, 1, NULL, &err));
    for (int i = 0; i < 3; i++) {
        float *p = host_params(&a.members[i]), *q = host_params(&ref.members[i]);
        CHECK(memcmp(p, q, sizeof(float) * a.members[i].n_params) == 0, "member %d: the retried step equals the "
              "unfailed one bit for bit", i);
        free(p);
        free(q);
    }
    ensemble_free(&a);
    ensemble_free(&ref);
    be = real;
}

// Members whose optimizer states differ (member 1 on Muon: its matrices hold one moment, not
// AdamW's two; the embedding's agree, and comes first) cannot swap moments: the shuffle is
// refused before any tensor moves.
static void test_wash_refuses_differing_states_whole(void) {
    Err err;
    ModelConfig c = micro_config(3);
    OptimConfig oc = adamw(), muon;
    CHECK_OK(optim_config_default(&muon, "muon", &err));
    Ensemble e;
    CHECK_OK(build(&e, &c, 2, 0, 70, &oc, &err));
    trainer_free(&e.trainers[1]);
    CHECK_OK(trainer_build(&e.trainers[1], &e.members[1], &muon, 171, &err));
    float *before[2] = {host_params(&e.members[0]), host_params(&e.members[1])};
    uint64_t rng = 3;
    long picked;
    CHECK(wash_shuffle(e.members, e.trainers, 2, 0.5f, WASH_FLAT, 1, &rng, &picked, &err) < 0 &&
          strstr(err.msg, "optimizer states differ"), "refused: '%s'", err.msg);
    for (int i = 0; i < 2; i++) {
        float *now = host_params(&e.members[i]);
        CHECK(memcmp(now, before[i], sizeof(float) * e.members[i].n_params) == 0, "member %d untouched", i);
        free(now);
        free(before[i]);
    }
    ensemble_free(&e);
}

static void test_wash_p0_equals_independent(void) {
    Err err;
    ModelConfig c = micro_config(3);
    OptimConfig oc = adamw();
    Dataset ds = member_data(4000, c.vocab);
    Ensemble a, b;
    CHECK_OK(build(&a, &c, 3, 0, 10, &oc, &err));
    CHECK_OK(build(&b, &c, 3, 0, 10, &oc, &err));
    EnsembleCoupling cp = ensemble_coupling_default();
    cp.method = ENSEMBLE_WASH;
    cp.p = 0;
    CHECK_OK(ensemble_set_coupling(&b, &cp, &err));
    for (int i = 0; i < 5; i++) {
        CHECK_OK(ensemble_step(&a, &ds, 2, 8, 1, NULL, &err));
        CHECK_OK(ensemble_step(&b, &ds, 2, 8, 1, NULL, &err));
    }
    for (int i = 0; i < 3; i++) {
        float *p = host_params(&a.members[i]), *q = host_params(&b.members[i]);
        CHECK(memcmp(p, q, sizeof(float) * a.members[i].n_params) == 0, "member %d: WASH p=0 equals independent", i);
        free(p);
        free(q);
    }
    CHECK(b.total_exchanged == 0, "p=0 exchanges nothing (%g)", b.total_exchanged);
    ensemble_free(&a);
    ensemble_free(&b);
}

// Per tensor: coordinates whose values changed in some member. Checks every coordinate's
// multiset (sorted values and sum) is conserved.
static void check_shuffle(const Ensemble *e, float **before, long *changed_per_tensor) {
    const Model *m0 = &e->members[0];
    int k = e->k;
    float *after[ENSEMBLE_MAX_K];
    for (int i = 0; i < k; i++) after[i] = host_params(&e->members[i]);
    int bad = 0;
    for (int ti = 0; ti < m0->n_tensors; ti++) {
        const TensorDesc *t = &m0->tensors[ti];
        changed_per_tensor[ti] = 0;
        for (size_t j = t->offset; j < t->offset + (size_t)t->rows * t->cols; j++) {
            float x[ENSEMBLE_MAX_K], y[ENSEMBLE_MAX_K];
            int changed = 0;
            for (int i = 0; i < k; i++) {
                x[i] = before[i][j], y[i] = after[i][j];
                changed |= x[i] != y[i];
            }
            changed_per_tensor[ti] += changed;
            // sort both (insertion) and compare
            for (int a = 1; a < k; a++)
                for (int b = a; b > 0 && x[b - 1] > x[b]; b--) { float t2 = x[b]; x[b] = x[b - 1]; x[b - 1] = t2; }
            for (int a = 1; a < k; a++)
                for (int b = a; b > 0 && y[b - 1] > y[b]; b--) { float t2 = y[b]; y[b] = y[b - 1]; y[b - 1] = t2; }
            double sx = 0, sy = 0;
            for (int i = 0; i < k; i++) {
                if (x[i] != y[i]) bad++;
                sx += x[i];
                sy += y[i];
            }
            if (sx != sy) bad++;
        }
    }
    CHECK(bad == 0, "every coordinate keeps its multiset of values across members (%d differences)", bad);
    for (int i = 0; i < k; i++) free(after[i]);
}

static void test_wash_conserves_values_and_follows_the_schedule(void) {
    Err err;
    ModelConfig c = micro_config(3);
    OptimConfig oc = adamw();
    Ensemble e;
    CHECK_OK(build(&e, &c, 4, 0, 30, &oc, &err));
    const Model *m0 = &e.members[0];
    int L = c.layers;
    // the schedule: p at the embedding, falling linearly, 0 at the head and final norm
    for (int ti = 0; ti < m0->n_tensors; ti++) {
        const TensorDesc *t = &m0->tensors[ti];
        float q = wash_tensor_prob(t, L, 0.3f, WASH_LINEAR), want;
        if (t->role == ROLE_EMBED) want = 0.3f;
        else if (t->layer < 0) want = 0;
        else want = 0.3f * (1 - (float)(t->layer + 1) / (L + 1));
        CHECK(fabsf(q - want) < 1e-7f, "%s: p_l %.4f, want %.4f", t->name, q, want);
        CHECK(wash_tensor_prob(t, L, 0.3f, WASH_FLAT) == 0.3f, "flat: %s gets p", t->name);
    }
    float *before[ENSEMBLE_MAX_K];
    long *changed = calloc(m0->n_tensors, sizeof(long));
    uint64_t rng = 9;
    const float p = 0.3f;
    long total_changed_first = 0, total_first = 0, picked = 0;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 4; i++) before[i] = host_params(&e.members[i]);
        long moved = wash_shuffle(e.members, e.trainers, 4, p, WASH_LINEAR, 0, &rng, &picked, &err);
        CHECK(moved > 0, "a shuffle with p=0.3 moves values (%ld; %s)", moved, err.msg);
        check_shuffle(&e, before, changed);
        long ch = 0;
        for (int ti = 0; ti < m0->n_tensors; ti++) {
            const TensorDesc *t = &m0->tensors[ti];
            if (t->role == ROLE_EMBED) {
                total_changed_first += changed[ti];
                total_first += (long)t->rows * t->cols;
            }
            if (t->layer < 0 && t->role != ROLE_EMBED)
                CHECK(changed[ti] == 0, "%s (the last layer) is never shuffled: %ld changed", t->name, changed[ti]);
            ch += changed[ti];
        }
        // a picked coordinate changes unless its permutation is the identity (1/K! = 1/24)
        CHECK(ch <= picked && moved >= ch && moved <= 4 * picked, "changed %ld, picked %ld, moved %ld", ch, picked, moved);
        for (int i = 0; i < 4; i++) free(before[i]);
    }
    // at the embedding: about p·(1 − 1/24) of the coordinates change per shuffle
    double frac = (double)total_changed_first / total_first, want = p * (1 - 1.0 / 24);
    double sd = sqrt(want * (1 - want) / total_first);
    printf("     embedding: %.4f of the coordinates changed per shuffle (expected %.4f ± %.4f)\n", frac, want, sd);
    CHECK(fabs(frac - want) < 5 * sd, "embedding changed fraction %.4f, expected %.4f", frac, want);
    // flat: the head is shuffled too
    for (int i = 0; i < 4; i++) before[i] = host_params(&e.members[i]);
    CHECK(wash_shuffle(e.members, e.trainers, 4, p, WASH_FLAT, 0, &rng, &picked, &err) > 0, "flat shuffle moves");
    check_shuffle(&e, before, changed);
    CHECK(changed[m0->head] > 0, "flat: the head is shuffled (%ld)", changed[m0->head]);
    for (int i = 0; i < 4; i++) free(before[i]);
    // what `ensemble wash` expects a shuffle to exchange is what shuffles exchange (with the
    // AdamW moments moved along, three values a coordinate)
    double want_of[2];
    for (int os = 0; os < 2; os++) {
        EnsembleCoupling cp = ensemble_coupling_default();
        cp.method = ENSEMBLE_WASH, cp.p = p, cp.schedule = WASH_FLAT, cp.opt_state = os;
        double sum = 0;
        for (int r = 0; r < 40; r++) sum += (double)wash_shuffle(e.members, e.trainers, 4, p, WASH_FLAT, os, &rng, &picked, &err);
        want_of[os] = wash_expected_exchange(&e, &cp);
        CHECK(fabs(sum / 40 - want_of[os]) < 0.03 * want_of[os], "opt_state=%d: %.0f values exchanged a shuffle, "
              "expected %.0f", os, sum / 40, want_of[os]);
    }
    CHECK(fabs(want_of[1] / want_of[0] - 3) < 1e-9, "the moments triple the count (%.4f)", want_of[1] / want_of[0]);
    // p = 0 changes nothing
    for (int i = 0; i < 4; i++) before[i] = host_params(&e.members[i]);
    CHECK(wash_shuffle(e.members, e.trainers, 4, 0, WASH_FLAT, 1, &rng, &picked, &err) == 0 && picked == 0, "p=0: nothing");
    check_shuffle(&e, before, changed);
    long any = 0;
    for (int ti = 0; ti < m0->n_tensors; ti++) any += changed[ti];
    CHECK(any == 0, "p=0 changes no value (%ld)", any);
    for (int i = 0; i < 4; i++) free(before[i]);
    free(changed);
    ensemble_free(&e);
}

static void test_wash_moves_moments_with_values(void) {
    Err err;
    ModelConfig c = micro_config(3);
    OptimConfig oc = adamw();
    Dataset ds = member_data(4000, c.vocab);
    Ensemble e;
    CHECK_OK(build(&e, &c, 3, 0, 50, &oc, &err));
    for (int i = 0; i < 2; i++) CHECK_OK(ensemble_step(&e, &ds, 2, 8, 1, NULL, &err));
    size_t np = e.members[0].n_params;
    for (int with_state = 0; with_state < 2; with_state++) {
        float *p0[3], *m0[3], *v0[3], *p1[3], *m1[3], *v1[3];
        for (int i = 0; i < 3; i++) {
            p0[i] = host_params(&e.members[i]);
            m0[i] = malloc(4 * np), v0[i] = malloc(4 * np);
            be->download(m0[i], e.trainers[i].opt.m, 4 * np);
            be->download(v0[i], e.trainers[i].opt.v, 4 * np);
        }
        uint64_t rng = 17;
        long picked;
        long moved = wash_shuffle(e.members, e.trainers, 3, 0.5f, WASH_FLAT, with_state, &rng, &picked, &err);
        CHECK(moved > 0, "shuffle moved values");
        for (int i = 0; i < 3; i++) {
            p1[i] = host_params(&e.members[i]);
            m1[i] = malloc(4 * np), v1[i] = malloc(4 * np);
            be->download(m1[i], e.trainers[i].opt.m, 4 * np);
            be->download(v1[i], e.trainers[i].opt.v, 4 * np);
        }
        long mismatched = 0, checked = 0, unmoved_state = 0;
        const Model *mm = &e.members[0];
        for (int ti = 0; ti < mm->n_tensors; ti++) {
            const TensorDesc *t = &mm->tensors[ti];
            for (size_t j = t->offset; j < t->offset + (size_t)t->rows * t->cols; j++)
                for (int i = 0; i < 3; i++) {
                    int from = -1;   // the member whose value member i holds now
                    for (int s = 0; s < 3; s++)
                        if (p0[s][j] == p1[i][j]) from = s;
                    if (from < 0 || p0[0][j] == p0[1][j] || p0[1][j] == p0[2][j] || p0[0][j] == p0[2][j]) continue;
                    if (from == i) continue;
                    checked++;
                    if (with_state) mismatched += m1[i][j] != m0[from][j] || v1[i][j] != v0[from][j];
                    else unmoved_state += m1[i][j] != m0[i][j] || v1[i][j] != v0[i][j];
                }
        }
        CHECK(checked > 100, "enough moved coordinates to check (%ld)", checked);
        if (with_state)
            CHECK(mismatched == 0, "opt_state=yes: the moments follow their values (%ld of %ld do not)", mismatched, checked);
        else
            CHECK(unmoved_state == 0, "opt_state=no: the moments stay (%ld of %ld moved)", unmoved_state, checked);
        for (int i = 0; i < 3; i++) free(p0[i]), free(m0[i]), free(v0[i]), free(p1[i]), free(m1[i]), free(v1[i]);
    }
    ensemble_free(&e);
}

static void test_papa_alpha1_makes_members_equal(void) {
    Err err;
    ModelConfig c = micro_config(3);
    OptimConfig oc = adamw();
    Ensemble e;
    CHECK_OK(build(&e, &c, 3, 0, 60, &oc, &err));
    size_t np = e.members[0].n_params;
    float *b[3];
    for (int i = 0; i < 3; i++) b[i] = host_params(&e.members[i]);
    long sent = papa_pull(e.members, 3, 1.0f, &err);
    CHECK(sent > 0, "PAPA communicates (%ld)", sent);
    float *a0 = host_params(&e.members[0]);
    int equal = 1;
    double worst = 0;
    for (int i = 1; i < 3; i++) {
        float *ai = host_params(&e.members[i]);
        equal &= memcmp(a0, ai, 4 * np) == 0;
        free(ai);
    }
    for (size_t j = 0; j < np; j++) worst = fmax(worst, fabs(a0[j] - ((double)b[0][j] + b[1][j] + b[2][j]) / 3));
    CHECK(equal, "α=1: every member equal");
    CHECK(worst < 1e-6, "α=1: the members are the mean (worst %.3g)", worst);
    free(a0);
    for (int i = 0; i < 3; i++) free(b[i]);
    ensemble_free(&e);
}

static void test_averages_of_identical_members(void) {
    Err err;
    ModelConfig c = micro_config(3);
    OptimConfig oc = adamw();
    Ensemble e;
    CHECK_OK(build(&e, &c, 3, 1, 70, &oc, &err));
    Model f, p;
    EnsembleAvgReport rep;
    CHECK_OK(ensemble_average(&e, ENSEMBLE_AVG_FACTORS, &f, NULL, &err));
    CHECK_OK(ensemble_average(&e, ENSEMBLE_AVG_PRODUCT, &p, &rep, &err));
    float *a = host_params(&e.members[0]), *b = host_params(&f);
    CHECK(memcmp(a, b, 4 * f.n_params) == 0, "mode=factors of identical members is the member, bit for bit");
    int B = 2, T = 8;
    int32_t tok[2 * 9];
    random_tokens(tok, B * (T + 1), c.vocab, 4);
    double lm[16], lp[16], ens;
    CHECK_OK(model_token_logprobs(&e.members[0], tok, B, T, lm, &err));
    CHECK_OK(model_token_logprobs(&p, tok, B, T, lp, &err));
    double worst = 0;
    for (int i = 0; i < B * T; i++) worst = fmax(worst, fabs(lm[i] - lp[i]));
    printf("     product of identical members: worst log-prob difference %.3g, truncation error %.3g (%d matrices)\n",
           worst, rep.worst_error, rep.n_matrices);
    CHECK(worst < 1e-4, "mode=product of identical members reproduces the member's log-probs (worst %.3g)", worst);
    CHECK(rep.n_matrices == 7 * c.layers && rep.worst_error < 1e-3, "truncation error ~0 (%.3g over %d)", rep.worst_error,
          rep.n_matrices);
    // averaged probabilities of identical members: the member's loss
    float loss;
    CHECK_OK(model_forward(&e.members[0], tok, B, T, &loss, &err));
    CHECK_OK(ensemble_prob_loss(e.members, 3, tok, B, T, &ens, &err));
    CHECK_NEAR(ens, loss, 1e-5, "ensemble NLL of identical members");
    free(a);
    free(b);
    model_free(&f);
    model_free(&p);
    ensemble_free(&e);
}

static void test_probability_averaging(void) {
    Err err;
    ModelConfig c = micro_config(3);
    OptimConfig oc = adamw();
    Ensemble e;
    CHECK_OK(build(&e, &c, 3, 0, 80, &oc, &err));
    int B = 2, T = 8, n = B * T;
    int32_t tok[2 * 9];
    random_tokens(tok, B * (T + 1), c.vocab, 6);
    double lp[3][16], ens, want = 0, mean_member = 0;
    for (int i = 0; i < 3; i++) CHECK_OK(model_token_logprobs(&e.members[i], tok, B, T, lp[i], &err));
    for (int j = 0; j < n; j++) {
        want -= log((exp(lp[0][j]) + exp(lp[1][j]) + exp(lp[2][j])) / 3) / n;
        mean_member -= (lp[0][j] + lp[1][j] + lp[2][j]) / 3 / n;
    }
    CHECK_OK(ensemble_prob_loss(e.members, 3, tok, B, T, &ens, &err));
    CHECK_NEAR(ens, want, 1e-9, "ensemble NLL = −mean log((p₀+p₁+p₂)/3)");
    CHECK(ens <= mean_member + 1e-12, "the ensemble is no worse than the mean member (Jensen): %.6f vs %.6f", ens, mean_member);
    // the host log-softmax agrees with the forward's loss
    float loss;
    double mine = 0;
    CHECK_OK(model_forward(&e.members[1], tok, B, T, &loss, &err));
    for (int j = 0; j < n; j++) mine -= lp[1][j] / n;
    CHECK_NEAR(mine, loss, 1e-5, "host log-softmax vs the forward's loss");
    ensemble_free(&e);
}

// Q (r×r) orthogonal: Gram–Schmidt of a random Gaussian matrix, in double.
static void random_orthogonal(double *q, int r, uint64_t seed) {
    for (int i = 0; i < r * r; i++) q[i] = rng_normal(&seed);
    for (int j = 0; j < r; j++) {       // columns
        for (int p = 0; p < j; p++) {
            double d = 0;
            for (int i = 0; i < r; i++) d += q[i * r + j] * q[i * r + p];
            for (int i = 0; i < r; i++) q[i * r + j] -= d * q[i * r + p];
        }
        double nn = 0;
        for (int i = 0; i < r; i++) nn += q[i * r + j] * q[i * r + j];
        for (int i = 0; i < r; i++) q[i * r + j] /= sqrt(nn);
    }
}

// X(rows×r) ← X·Q
static void rotate(float *x, int rows, int r, const double *q) {
    double row[64];
    for (int i = 0; i < rows; i++) {
        for (int j = 0; j < r; j++) {
            double s = 0;
            for (int l = 0; l < r; l++) s += x[i * r + l] * q[l * r + j];
            row[j] = s;
        }
        for (int j = 0; j < r; j++) x[i * r + j] = (float)row[j];
    }
}

static void test_factor_vs_product_average_under_rotation(void) {
    Err err;
    ModelConfig c = micro_config(4);
    Model two[2];
    CHECK_OK(model_build(&two[0], &c, be, &err));
    CHECK_OK(model_alloc(&two[1], &c, be, &err));
    {   // trained a little, so that its function is not the near-uniform one of the init
        OptimConfig oc = adamw();
        Dataset ds = member_data(4000, c.vocab);
        Trainer tr;
        CHECK_OK(trainer_build(&tr, &two[0], &oc, 3, &err));
        for (int s = 0; s < 30; s++) CHECK_OK(trainer_step(&tr, &ds, 4, 8, 1, NULL, &err));
        trainer_free(&tr);
    }
    float *h = host_params(&two[0]);
    double q[16];
    uint64_t seed = 123;
    for (int ti = 0; ti < two[0].n_tensors; ti++) {
        const TensorDesc *t = &two[0].tensors[ti];
        if (t->role != ROLE_FACTOR_A) continue;
        random_orthogonal(q, t->cols, seed++);
        rotate(h + t->offset, t->rows, t->cols, q);                                         // A → AQ
        rotate(h + two[0].tensors[ti + 1].offset, two[0].tensors[ti + 1].rows, t->cols, q);  // B → BQ
    }
    be->upload(two[1].params, h, 4 * two[1].n_params);
    free(h);
    int B = 4, T = 8;
    int32_t tok[4 * 9];
    Dataset ds = member_data(4000, c.vocab);
    uint64_t vr = 8;
    CHECK_OK(dataset_batch(&ds, 1, B, T, &vr, tok, &err));   // held-out text the member has learnt to predict
    float l0, l1, lf, lp;
    CHECK_OK(model_forward(&two[0], tok, B, T, &l0, &err));
    CHECK_OK(model_forward(&two[1], tok, B, T, &l1, &err));
    CHECK_NEAR(l1, l0, 1e-5, "the rotated member computes the same function");
    Model f, p;
    EnsembleAvgReport rep;
    CHECK_OK(models_average(two, 2, ENSEMBLE_AVG_FACTORS, &f, NULL, &err));
    CHECK_OK(models_average(two, 2, ENSEMBLE_AVG_PRODUCT, &p, &rep, &err));
    CHECK_OK(model_forward(&f, tok, B, T, &lf, &err));
    CHECK_OK(model_forward(&p, tok, B, T, &lp, &err));
    printf("     member loss %.6f, rotated %.6f; product average %.6f (truncation %.2g), factor average %.6f\n", l0, l1,
           lp, rep.worst_error, lf);
    CHECK_NEAR(lp, l0, 1e-4, "mode=product of a member and its rotation is the member");
    CHECK(rep.worst_error < 1e-3, "the products' average has rank r (truncation error %.3g)", rep.worst_error);
    // the micro model's loss is dominated by embed and head, so the loss moves little while W
    // moves a lot (below); both are observed, the W check is the strong one
    CHECK(fabsf(lf - l0) > 1e-4f, "mode=factors of a member and its rotation is another model (%.6f vs %.6f)", lf, l0);
    // in weights: ‖W_f − W‖_F / ‖W‖_F of the first factorized matrix (W = A·Bᵀ on the host)
    int ta = model_find_tensor(&f, "blocks.0.attn.wq.A");
    const TensorDesc *t = &f.tensors[ta], *tb = &f.tensors[ta + 1];
    float *hm = host_params(&two[0]), *hf = host_params(&f);
    double num = 0, den = 0;
    for (int i = 0; i < t->rows; i++)
        for (int j = 0; j < tb->rows; j++) {
            double w = 0, wf = 0;
            for (int l = 0; l < t->cols; l++) {
                w += (double)hm[t->offset + i * t->cols + l] * hm[tb->offset + j * t->cols + l];
                wf += (double)hf[t->offset + i * t->cols + l] * hf[tb->offset + j * t->cols + l];
            }
            num += (wf - w) * (wf - w);
            den += w * w;
        }
    printf("     blocks.0.attn.wq: the factor average's W is %.3f off the member's (relative Frobenius)\n", sqrt(num / den));
    CHECK(sqrt(num / den) > 0.05, "factor averaging changes W (%.4f)", sqrt(num / den));
    free(hm);
    free(hf);
    model_free(&f);
    model_free(&p);
    model_free(&two[0]);
    model_free(&two[1]);
}

static void test_ensemble_take_member(void) {
    Err err;
    ModelConfig c = micro_config(3);
    OptimConfig oc = adamw();
    Dataset ds = member_data(4000, c.vocab);
    Ensemble e;
    CHECK_OK(build(&e, &c, 3, 0, 90, &oc, &err));
    CHECK_OK(ensemble_step(&e, &ds, 2, 8, 1, NULL, &err));
    CHECK(ensemble_bytes(&e, 2, 8) > 3 * 4 * e.members[0].n_params * sizeof(float), "bytes count K models and state");
    float *want = host_params(&e.members[2]);
    Model m;
    Trainer tr;
    CHECK(ensemble_take_member(&e, 3, &m, &tr, &err) != 0, "member 3 of 3 is refused");
    CHECK_OK(ensemble_take_member(&e, 2, &m, &tr, &err));
    CHECK(e.members == NULL && e.k == 0, "the ensemble is empty afterwards");
    float *got = host_params(&m);
    CHECK(memcmp(want, got, 4 * m.n_params) == 0, "member 2's weights");
    CHECK(tr.model == &m && tr.step == 1, "its trainer follows it");
    CHECK_OK(trainer_step(&tr, &ds, 2, 8, 1, NULL, &err));
    free(want);
    free(got);
    trainer_free(&tr);
    model_free(&m);
}

static void test_grad_cosines(void) {
    Err err;
    ModelConfig c = micro_config(3);
    OptimConfig oc = adamw();
    Ensemble e;
    CHECK_OK(build(&e, &c, 3, 1, 95, &oc, &err));
    int32_t tok[2 * 9];
    random_tokens(tok, 18, c.vocab, 2);
    double cs[9];
    CHECK_OK(ensemble_grad_cosines(&e, tok, 2, 8, cs, &err));
    CHECK(fabs(cs[1] - 1) < 1e-9 && fabs(cs[5] - 1) < 1e-9, "identical members: cosine 1 (%.9f, %.9f)", cs[1], cs[5]);
    ensemble_free(&e);
    CHECK_OK(build(&e, &c, 3, 0, 95, &oc, &err));
    CHECK_OK(ensemble_grad_cosines(&e, tok, 2, 8, cs, &err));
    CHECK(cs[1] < 0.99 && cs[1] == cs[3], "different inits: cosine < 1 and symmetric (%.4f)", cs[1]);
    ensemble_free(&e);
}

// K=3 micro models, 30 steps from different inits: independent vs WASH. Prints every number;
// asserts only what holds with margin.
static void test_short_run_wash_vs_independent(void) {
    Err err;
    ModelConfig c = micro_config(4);
    OptimConfig oc = adamw();
    Dataset ds = member_data(6000, c.vocab);
    EnsembleEval r[2];
    for (int w = 0; w < 2; w++) {
        Ensemble e;
        CHECK_OK(build(&e, &c, 3, 0, 200, &oc, &err));
        EnsembleCoupling cp = ensemble_coupling_default();
        if (w) {
            cp.method = ENSEMBLE_WASH;
            cp.p = 0.5f;
        }
        CHECK_OK(ensemble_set_coupling(&e, &cp, &err));
        for (int s = 0; s < 30; s++) CHECK_OK(ensemble_step(&e, &ds, 4, 8, 1, NULL, &err));
        CHECK_OK(ensemble_eval(&e, &ds, 4, 8, 4, 1, NULL, NULL, &r[w], &err));
        printf("     %-11s members %.4f %.4f %.4f  ensemble %.4f  avg factors %.4f  avg product %.4f (trunc %.3f)  "
               "values exchanged %.0f\n",
               w ? "wash p=0.5" : "independent", r[w].member[0], r[w].member[1], r[w].member[2], r[w].ensemble,
               r[w].avg_factors, r[w].avg_product, r[w].product.mean_error, e.total_exchanged);
        ensemble_free(&e);
    }
    CHECK(r[1].avg_factors < r[0].avg_factors - 0.1, "WASH's factor average (%.4f) beats the independent one (%.4f)",
          r[1].avg_factors, r[0].avg_factors);
    CHECK(r[1].avg_factors < r[1].member_mean + 0.25, "WASH's factor average (%.4f) is close to its members (%.4f)",
          r[1].avg_factors, r[1].member_mean);
    CHECK(r[0].ensemble <= r[0].member_mean + 1e-5 && r[1].ensemble <= r[1].member_mean + 1e-5,
          "ensembles are no worse than their mean member");
}

// ---- checkpoints --------------------------------------------------------------------------

static char tmpdir[64];

static const char *tmp_path(const char *name) {
    static char buf[4][160];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, 160, "%s/%s", tmpdir, name);
    return p;
}

// Every optimizer state tensor of a and b equal, bit for bit.
static int same_state(const Trainer *a, const Trainer *b) {
    static StateTensor sa[256], sb[256];
    int n = optimizer_state_tensors(&a->opt, a->model, sa, 256);
    if (n > 256 || n != optimizer_state_tensors(&b->opt, b->model, sb, 256)) return 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(sa[i].name, sb[i].name) != 0 || sa[i].numel != sb[i].numel) return 0;
        float *x = malloc(4 * (size_t)sa[i].numel), *y = malloc(4 * (size_t)sa[i].numel);
        be->download(x, sa[i].data, 4 * (size_t)sa[i].numel);
        be->download(y, sb[i].data, 4 * (size_t)sb[i].numel);
        int same = memcmp(x, y, 4 * (size_t)sa[i].numel) == 0;
        free(x);
        free(y);
        if (!same) return 0;
    }
    return 1;
}

static int same_members(const Ensemble *a, const Ensemble *b, const char **why) {
    if (a->k != b->k) return *why = "k", 0;
    for (int i = 0; i < a->k; i++) {
        const Model *x = &a->members[i], *y = &b->members[i];
        if (x->n_params != y->n_params) return *why = "n_params", 0;
        float *p = host_params(x), *q = host_params(y);
        int same = memcmp(p, q, sizeof(float) * x->n_params) == 0;
        free(p);
        free(q);
        if (!same) return *why = "parameters", 0;
        if (x->cfg.seed != y->cfg.seed) return *why = "config seed", 0;
        if (!same_state(&a->trainers[i], &b->trainers[i])) return *why = "optimizer state", 0;
        const Trainer *s = &a->trainers[i], *t = &b->trainers[i];
        if (t->model != y || s->step != t->step || s->data_rng != t->data_rng || s->opt.t != t->opt.t)
            return *why = "trainer step, data_rng or t", 0;
        if (a->init_seeds[i] != b->init_seeds[i] || a->data_seeds[i] != b->data_seeds[i]) return *why = "seeds", 0;
    }
    const EnsembleCoupling *c = &a->coupling, *d = &b->coupling;
    if (c->method != d->method || c->p != d->p || c->schedule != d->schedule || c->opt_state != d->opt_state ||
        c->alpha != d->alpha || c->every != d->every)
        return *why = "coupling", 0;
    if (a->mix_rng != b->mix_rng || a->step != b->step || a->mixes != b->mixes ||
        a->last_exchanged != b->last_exchanged || a->total_exchanged != b->total_exchanged ||
        a->same_init != b->same_init || a->be != b->be)
        return *why = "ensemble state (rng, step, mixes, exchanged)", 0;
    return 1;
}

static void test_checkpoint_round_trip(void) {
    Err err;
    ModelConfig c = micro_config(3);
    OptimConfig oc = adamw();
    Dataset ds = member_data(4000, c.vocab);
    Ensemble e, r;
    CHECK_OK(build(&e, &c, 3, 0, 30, &oc, &err));
    EnsembleCoupling cp = ensemble_coupling_default();
    cp.method = ENSEMBLE_WASH;
    cp.p = 0.3f;
    cp.schedule = WASH_FLAT;
    cp.every = 2;
    cp.alpha = 0.125f;   // kept for a later `ensemble papa` even while WASH runs
    CHECK_OK(ensemble_set_coupling(&e, &cp, &err));
    for (int i = 0; i < 3; i++) CHECK_OK(ensemble_step(&e, &ds, 2, 8, 1, NULL, &err));
    CHECK(e.total_exchanged > 0 && e.mixes == 1, "the ensemble mixed before the save (%g values)", e.total_exchanged);
    const char *path = tmp_path("ens.safetensors");
    CHECK_OK(ensemble_save(path, &e, NULL, NULL, &err));
    CheckpointInfo info;
    Tokenizer *tok = (Tokenizer *)&info;
    CHECK_OK(ensemble_load(path, be, &r, &tok, &info, &err));
    if (err.msg[0]) {
        ensemble_free(&e);
        return;
    }
    const char *why = "";
    CHECK(same_members(&e, &r, &why), "ensemble round trip: %s differs", why);
    CHECK(tok == NULL && info.ensemble_k == 3 && info.step == 3 && info.has_optim, "info: k %d, step %d",
          info.ensemble_k, info.step);
    ensemble_free(&r);
    // from bytes in memory, the same
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *bytes = malloc((size_t)n);
    CHECK(fread(bytes, 1, (size_t)n, f) == (size_t)n, "read %s", path);
    fclose(f);
    CHECK_OK(ensemble_load_bytes(bytes, (size_t)n, "mem", be, &r, NULL, NULL, &err));
    if (!err.msg[0]) {
        CHECK(same_members(&e, &r, &why), "ensemble round trip from memory: %s differs", why);
        ensemble_free(&r);
    }
    free(bytes);
    // a single model's loader says what the file is
    Model m;
    CHECK(checkpoint_load(path, be, &m, NULL, NULL, NULL, &err) != 0 && strstr(err.msg, "holds an ensemble of 3 members"),
          "checkpoint_load of an ensemble file: '%s'", err.msg);
    ensemble_free(&e);
}

// Save at step S of N with WASH on (mixing every 3rd step, moments moved), reload, go on to N:
// the same losses, parameters, moments, shuffle generator and values exchanged, bit for bit.
static void test_checkpoint_resume_with_wash(void) {
    enum { N = 8, S = 4, K = 3 };
    Err err;
    ModelConfig c = micro_config(3);
    OptimConfig oc = adamw();
    Dataset ds = member_data(4000, c.vocab);
    Ensemble e, r;
    CHECK_OK(build(&e, &c, K, 0, 60, &oc, &err));
    EnsembleCoupling cp = ensemble_coupling_default();
    cp.method = ENSEMBLE_WASH;
    cp.p = 0.4f;
    cp.every = 3;
    CHECK_OK(ensemble_set_coupling(&e, &cp, &err));
    float full[N][K], resumed[N][K];
    const char *path = tmp_path("resume.safetensors");
    for (int i = 0; i < N; i++) {
        EnsembleStepStats st;
        CHECK_OK(ensemble_step(&e, &ds, 2, 8, 1, &st, &err));
        for (int j = 0; j < K; j++) full[i][j] = st.member[j].loss;
        if (i + 1 == S) CHECK_OK(ensemble_save(path, &e, NULL, NULL, &err));
    }
    CHECK_OK(ensemble_load(path, be, &r, NULL, NULL, &err));
    if (err.msg[0]) {
        ensemble_free(&e);
        return;
    }
    CHECK(r.step == S && r.trainers[0].step == S, "resumed at step %d", r.step);
    for (int i = S; i < N; i++) {
        EnsembleStepStats st;
        CHECK_OK(ensemble_step(&r, &ds, 2, 8, 1, &st, &err));
        for (int j = 0; j < K; j++) resumed[i][j] = st.member[j].loss;
    }
    CHECK(memcmp(full[S], resumed[S], sizeof(float) * K * (N - S)) == 0,
          "losses after the resume are bit-identical (step %d member 0: %.9g vs %.9g)", N, full[N - 1][0],
          resumed[N - 1][0]);
    const char *why = "";
    CHECK(same_members(&e, &r, &why), "after %d steps the resumed ensemble equals the uninterrupted one (%s differs)", N,
          why);
    CHECK(e.mixes == 2 && e.total_exchanged > 0, "WASH mixed twice (%d), %g values", e.mixes, e.total_exchanged);
    ensemble_free(&r);
    ensemble_free(&e);
}

// A file of valid members with its ensemble metadata edited: each edit refused by key name.
static void test_checkpoint_bad_ensemble_metadata(void) {
    Err err;
    ModelConfig c = micro_config(3);
    OptimConfig oc = adamw();
    Ensemble e, out;
    CHECK_OK(build(&e, &c, 2, 0, 90, &oc, &err));
    const char *good = tmp_path("meta-good.safetensors"), *bad = tmp_path("meta-bad.safetensors");
    CHECK_OK(ensemble_save(good, &e, NULL, NULL, &err));
    CheckpointMembers cm;
    CHECK_OK(checkpoint_load_members(good, be, &cm, &err));
    if (err.msg[0]) {
        ensemble_free(&e);
        return;
    }
    static const struct { const char *key, *value, *want; } edits[] = {
        {"ensemble_method", "swap", "ensemble_method 'swap'"},
        {"ensemble_wash_p", "1.5", "ensemble_wash_p '1.5'"},
        {"ensemble_wash_p", "nan", "ensemble_wash_p 'nan'"},
        {"ensemble_wash_schedule", "cosine", "ensemble_wash_schedule"},
        {"ensemble_papa_alpha", "-0.1", "ensemble_papa_alpha"},
        {"ensemble_every", "0", "ensemble_every '0'"},
        {"ensemble_mix_rng", "0x10", "ensemble_mix_rng"},
        {"ensemble_mixes", "99", "ensemble_mixes '99'"},
        {"ensemble_exchanged", "-5", "ensemble_exchanged"},
        {"ensemble_init_seeds", "1", "ensemble_init_seeds '1'"},
        {"ensemble_data_seeds", "1,2,3", "ensemble_data_seeds"},
        {"ensemble_step", NULL, "ensemble_step '(none)'"},
        {"ensemble_step", "7", "the ensemble's step is 7 but its members are at step 0"},
    };
    for (size_t x = 0; x < sizeof edits / sizeof edits[0]; x++) {
        CheckpointMeta meta[32];
        int n = 0;
        for (int i = 0; i < cm.n_meta && n < 32; i++) {
            meta[n] = cm.meta[i];
            if (strcmp(cm.meta[i].key, edits[x].key) == 0) {
                if (!edits[x].value) continue;
                meta[n].value = (char *)edits[x].value;
            }
            n++;
        }
        CHECK_OK(checkpoint_save_members(bad, e.k, e.members, e.trainers, NULL, meta, n, NULL, &err));
        memset(&out, 0x5a, sizeof out);
        Ensemble before;
        memcpy(&before, &out, sizeof out);
        int rc = ensemble_load(bad, be, &out, NULL, NULL, &err);
        CHECK(rc != 0 && strstr(err.msg, edits[x].want) && strstr(err.msg, bad),
              "%s=%s: expected an error with '%s', got rc=%d '%s'", edits[x].key, edits[x].value ? edits[x].value : "(gone)",
              edits[x].want, rc, err.msg);
        CHECK(memcmp(&out, &before, sizeof out) == 0, "%s: a refused load leaves *out alone", edits[x].key);
        if (rc == 0) ensemble_free(&out);
    }
    // members at different steps are not one ensemble
    e.trainers[1].step = 3;
    CHECK_OK(checkpoint_save_members(bad, e.k, e.members, e.trainers, NULL, cm.meta, cm.n_meta, NULL, &err));
    CHECK(ensemble_load(bad, be, &out, NULL, NULL, &err) != 0 && strstr(err.msg, "member.1.step is 3 but member.0.step "
          "is 0"), "members at different steps: '%s'", err.msg);
    e.trainers[1].step = 0;
    // one member is no ensemble (a file edited to ensemble_k=1 loaded, and its couplings said
    // they would exchange values and then did nothing)
    CHECK_OK(checkpoint_save_members(bad, 1, e.members, e.trainers, NULL, cm.meta, cm.n_meta, NULL, &err));
    CHECK(ensemble_load(bad, be, &out, NULL, NULL, &err) != 0 && strstr(err.msg, "an ensemble of 1 member, but an "
          "ensemble has 2 to 16"), "one member: '%s'", err.msg);
    // members without trainers are not an ensemble that can train
    CHECK_OK(checkpoint_save_members(bad, e.k, e.members, NULL, NULL, cm.meta, cm.n_meta, NULL, &err));
    CHECK(ensemble_load(bad, be, &out, NULL, NULL, &err) != 0 && strstr(err.msg, "no optimizer settings"),
          "members without trainers: '%s'", err.msg);
    // a member's tensor damaged: named by the members' loader
    FILE *f = fopen(good, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    CHECK(truncate(good, n - 4) == 0, "truncate %s", good);
    CHECK(ensemble_load(good, be, &out, NULL, NULL, &err) != 0 && strstr(err.msg, "truncated"),
          "a truncated ensemble file: '%s'", err.msg);
    checkpoint_members_free(&cm);
    ensemble_free(&e);
}

int main(void) {
    be = backend_cpu(1);
    RUN(test_k1_equals_plain_training);
    RUN(test_member0_continues_the_trainer);
    RUN(test_wash_p0_equals_independent);
    RUN(test_failed_member_update_undoes_the_step);
    RUN(test_wash_refuses_differing_states_whole);
    RUN(test_wash_conserves_values_and_follows_the_schedule);
    RUN(test_wash_moves_moments_with_values);
    RUN(test_papa_alpha1_makes_members_equal);
    RUN(test_averages_of_identical_members);
    RUN(test_probability_averaging);
    RUN(test_factor_vs_product_average_under_rotation);
    RUN(test_ensemble_take_member);
    RUN(test_grad_cosines);
    RUN(test_short_run_wash_vs_independent);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lrsh-test-ensemble-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_checkpoint_round_trip);
    RUN(test_checkpoint_resume_with_wash);
    RUN(test_checkpoint_bad_ensemble_metadata);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return TEST_SUMMARY();
}
