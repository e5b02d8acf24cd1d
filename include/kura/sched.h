/* Continuous-batching scheduler: the engine under `kura serve`.
 *
 * One scheduler owns one model's evaluation context and N slots (each slot = one sequence with
 * its own KV cache). A single scheduler thread loops: admit queued requests into free slots,
 * then run ONE batched kura_ctx_eval over all active sequences per step (one decode token for
 * every generating slot plus at most `prefill_chunk` prompt tokens of slots still prefilling, so
 * a long prompt never stalls running streams for long), sample every slot, report tokens through
 * the request's callback, and free the slots that finished. New requests join between steps.
 *
 * Greedy output for a request does not depend on what else runs beside it.
 *
 * Thread-safety: kura_sched_submit / kura_sched_cancel / kura_sched_stats / kura_sched_embed may
 * be called from any thread (e.g. HTTP handler threads). Callbacks run on the scheduler thread:
 * they must not block for long and must not call back into the scheduler except
 * kura_sched_cancel. */
#ifndef KURA_SCHED_H
#define KURA_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kura/err.h"
#include "kura/generate.h" /* enum kura_finish */
#include "kura/model.h"
#include "kura/sample.h"
#include "kura/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

struct kura_sched;

struct kura_sched_params {
    int n_slots;           /* parallel sequences (1..64) */
    int32_t n_ctx;         /* KV positions per slot (prompt + generation) */
    int32_t prefill_chunk; /* max prompt tokens evaluated per step across slots (e.g. 256) */
    int queue_max;         /* waiting requests beyond the slots; more -> KURA_ERR_BUSY */
    int n_threads;         /* <= 0: physical cores */
};

#define KURA_SCHED_MAX_TOP_LOGPROBS 20

/* One event per generated token (and a final one with done = true). An end-of-generation token
 * that ends the request gets no event of its own (it counts in n_gen, as in kura_generate). The
 * final event's text is whatever the UTF-8 guard and the stop matcher still held back when the
 * stream ended without a stop string (usually empty); after a stop string it is empty.
 * Log-probabilities are those of the model's distribution (before penalties and the JSON mask). */
struct kura_sched_event {
    uint64_t id;             /* request id from kura_sched_submit */
    int32_t token;           /* -1 in the final event */
    const char *text;        /* UTF-8 text released by this token (stop-filtered, never half a
                                character); may be empty; valid only during the callback */
    size_t text_len;
    float logprob;           /* of `token` (when the request asked for logprobs) */
    int n_top;               /* entries in top_ids/top_logprobs (request's top_logprobs) */
    const int32_t *top_ids;
    const float *top_logprobs;
    bool done;
    enum kura_finish finish; /* valid when done */
    int32_t n_prompt, n_gen; /* token counts so far (usage) */
    enum kura_err err;       /* KURA_OK unless the request failed inside the engine */
};

/* Return false to cancel the request (e.g. the client disconnected); the slot is freed at once
 * and a final event with finish = KURA_FINISH_CANCELLED follows. */
typedef bool (*kura_sched_cb)(void *ud, const struct kura_sched_event *ev);

struct kura_sched_req {
    const int32_t *prompt; /* copied at submit */
    int32_t n_prompt;
    int32_t max_tokens;    /* > 0 */
    struct kura_sample_params sample;
    const char *const *stops; /* copied at submit */
    size_t n_stops;
    bool ignore_eos;
    bool logprobs;         /* fill logprob */
    int top_logprobs;      /* 0..KURA_SCHED_MAX_TOP_LOGPROBS */
    bool json_mode;        /* constrain sampling so the output is one valid JSON object
                              (kura/json_constraint.h): the request ends with
                              KURA_FINISH_STOP as soon as the object is complete, and
                              closes it before max_tokens runs out (needs max_tokens >= 2) */
    kura_sched_cb cb;
    void *ud;
};

/* Creates the scheduler and starts its thread. model and tok are borrowed and must outlive it. */
enum kura_err kura_sched_create(const struct kura_model *model, const struct kura_tok *tok,
                                const struct kura_sched_params *p,
                                struct kura_sched **out /* OUT */, struct kura_errbuf *eb);
/* Cancels everything still queued or running (each gets its final event), stops the thread,
 * frees all. NULL is a no-op. */
void kura_sched_destroy(struct kura_sched *s);

/* Queues a request. KURA_ERR_BUSY when queue_max requests already wait beyond the free slots
 * (caller answers 429/503),
 * KURA_ERR_RANGE when n_prompt + 1 > n_ctx (caller answers 400), KURA_ERR_INVALID for bad
 * params. On success *id_out identifies it; the callback will be called until done. */
enum kura_err kura_sched_submit(struct kura_sched *s, const struct kura_sched_req *r,
                                uint64_t *id_out /* OUT */, struct kura_errbuf *eb);
/* Cancels a queued or running request (no-op if unknown or already done). The slot is freed and
 * the final event (KURA_FINISH_CANCELLED) sent at the end of the step in progress. */
void kura_sched_cancel(struct kura_sched *s, uint64_t id);

/* Embedding of a token sequence: mean-pooled final hidden states (after the output norm),
 * L2-normalised, written to out[n_embd]. Runs on the scheduler thread between steps, at most
 * prefill_chunk tokens per step (in its own KV cache of n_ctx positions, made on first use);
 * blocks the caller until done. KURA_ERR_RANGE when n > n_ctx. */
enum kura_err kura_sched_embed(struct kura_sched *s, const int32_t *tokens, int32_t n,
                               float *out /* OUT: n_embd */, struct kura_errbuf *eb);

struct kura_sched_stats {
    int n_slots, active_slots, queued;
    uint64_t kv_used_cells, kv_total_cells; /* positions in use / available over all slots */
    uint64_t tokens_prompt, tokens_generated; /* totals since creation */
    uint64_t steps;
};
void kura_sched_stats(struct kura_sched *s, struct kura_sched_stats *out /* OUT */);

#ifdef __cplusplus
}
#endif

#endif
