/* Token sampling (penalties, top-k, top-p, min-p, temperature, seeded draw), log-probabilities
 * for the API's `logprobs`, and an incremental stop-string matcher for streamed text.
 *
 * The sampler follows the order and arithmetic of llama.cpp's default chain and the OpenAI API:
 *   1. penalties on the raw logits, over the last `repeat_last_n` accepted tokens:
 *        repeat:    logit <= 0 ? logit * repeat_penalty : logit / repeat_penalty
 *        then       logit -= count * frequency_penalty + (count > 0) * presence_penalty
 *      (llama.cpp counts frequency/presence over the same window as the repeat penalty; so do we)
 *   2. temperature <= 0: greedy argmax of the penalised logits (ties -> lowest id), stop here
 *   3. top-k (k <= 0 or k >= n_vocab: off)
 *   4. top-p over the softmax of the candidates left (p >= 1: off; keeps the smallest prefix,
 *      in descending probability, whose mass reaches p; at least 1)
 *   5. min-p: keeps candidates with p >= min_p * p_max (min_p <= 0: off; at least 1)
 *   6. temperature: logits / temperature, softmax, one draw from the sampler's own PRNG
 *      (xoshiro256** seeded through splitmix64), so one seed reproduces a run exactly.
 * Candidates tie-break by lower token id wherever an order matters. NaN logits count as -inf.
 * Only the candidates that survive top-k are sorted (partial selection), so top_k = 40 over a
 * 150k vocabulary costs one pass over the logits. */
#ifndef KURA_SAMPLE_H
#define KURA_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kura/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* seed value meaning "draw a seed from the operating system" (see kura_sampler_seed). */
#define KURA_SAMPLE_SEED_RANDOM UINT64_MAX

struct kura_sample_params {
    float temperature;       /* <= 0: greedy */
    int32_t top_k;           /* <= 0: off */
    float top_p;             /* >= 1: off */
    float min_p;             /* <= 0: off */
    float repeat_penalty;    /* 1: off; must be > 0 */
    int32_t repeat_last_n;   /* window of the penalties: 0 off, -1 the whole history (capped) */
    float frequency_penalty; /* 0: off (OpenAI range -2..2, not enforced) */
    float presence_penalty;  /* 0: off */
    uint64_t seed;           /* KURA_SAMPLE_SEED_RANDOM: from the OS */
};

/* llama.cpp's defaults: temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, repeat_penalty 1,
 * repeat_last_n 64, frequency/presence 0, seed KURA_SAMPLE_SEED_RANDOM. */
struct kura_sample_params kura_sample_params_default(void);

struct kura_sampler;

/* Creates a sampler for a vocabulary of n_vocab tokens (1..KURA_MAX_VOCAB). Params are copied.
 * Fails with KURA_ERR_INVALID on NaN or out-of-range params (repeat_penalty <= 0,
 * repeat_last_n < -1, ...). On success the caller owns *out (kura_sampler_destroy); on failure
 * *out = NULL. One sampler belongs to one sequence: not thread-safe, distinct samplers are. */
enum kura_err kura_sampler_create(const struct kura_sample_params *params, int32_t n_vocab,
                                  struct kura_sampler **out /* OUT */, struct kura_errbuf *eb);
void kura_sampler_destroy(struct kura_sampler *s); /* NULL is a no-op */

/* Picks the next token from logits[n_vocab] (modified in place: penalties are applied to it and
 * NaN entries become -inf). Always returns an id in [0, n_vocab). Does not record the token:
 * call kura_sampler_accept with the token actually used. */
int32_t kura_sampler_sample(struct kura_sampler *s, float *logits);

/* Diagnostics and tests: applies the penalties and the filters of kura_sampler_sample to logits
 * (modified the same way) without drawing, and writes the ids of the surviving candidates to
 * ids_out (room for n_vocab), in the order the draw walks them (descending logit when top-k or
 * top-p ran, else by id). Returns their number (1 for greedy: the argmax). The PRNG is untouched. */
size_t kura_sampler_candidates(struct kura_sampler *s, float *logits, int32_t *ids_out /* OUT */);

/* Records a token in the penalty history (prompt tokens too, if they should be penalised).
 * KURA_ERR_INVALID for an id outside [0, n_vocab), KURA_ERR_NOMEM when the history cannot grow. */
enum kura_err kura_sampler_accept(struct kura_sampler *s, int32_t id);

/* Forgets the history and restarts the PRNG from the sampler's seed: the next run repeats the
 * first one exactly. */
void kura_sampler_reset(struct kura_sampler *s);

/* The seed in use (the drawn one when params.seed was KURA_SAMPLE_SEED_RANDOM), for logs and for
 * reproducing a run. */
uint64_t kura_sampler_seed(const struct kura_sampler *s);

/* Log-softmax of logits[n_vocab], top k entries in descending order (ties -> lower id) into
 * ids_out[k] and logprobs_out[k]. Computed as logit - logsumexp in double, stable for large
 * logits. Returns the number written: min(k, n_vocab), 0 when k <= 0 or n_vocab <= 0. No
 * allocation; thread-safe. NaN logits count as -inf. */
int kura_logprobs_top(const float *logits, int n_vocab, int k, int32_t *ids_out /* OUT */,
                      float *logprobs_out /* OUT */);

/* Log-probability of token id under the softmax of logits[n_vocab]; -INFINITY for an id out of
 * range. Thread-safe. */
float kura_logprob_of(const float *logits, int n_vocab, int32_t id);

/* ---- Stop strings ----------------------------------------------------------------------------
 * Incremental matcher over streamed text. Push decoded pieces; each push returns the text that
 * can be sent to the client now. A suffix that could still become a stop string is held back,
 * as is a trailing incomplete UTF-8 sequence (so half a character is never emitted even if a
 * piece ends inside one). Generation stops at the first point in the stream where any stop
 * string is complete; the text before that stop string is emitted, the stop string and anything
 * after it are not. When several stop strings end at that same point the longest one (the one
 * starting earliest) is reported. The result does not depend on how the text is cut into
 * pieces. */
struct kura_stop;

/* Copies n_stops strings (each 1..KURA_STOP_MAX_LEN bytes, at most KURA_STOP_MAX_STRINGS).
 * n_stops = 0 is allowed (then only incomplete UTF-8 is held back). Empty strings ->
 * KURA_ERR_INVALID. Caller owns *out (kura_stop_destroy); *out = NULL on failure. Not
 * thread-safe; one matcher per stream. */
enum kura_err kura_stop_create(const char *const *stops, size_t n_stops,
                               struct kura_stop **out /* OUT */, struct kura_errbuf *eb);
void kura_stop_destroy(struct kura_stop *st); /* NULL is a no-op */

/* Appends piece[piece_len]. *emit and *emit_len: text safe to send now (a view into the matcher,
 * valid until its next call). *stopped: true once a stop string has completed (then and on every
 * later push, which emits nothing). KURA_ERR_RANGE for a piece over KURA_STOP_MAX_PIECE,
 * KURA_ERR_NOMEM; on error nothing is consumed and *emit_len = 0. */
enum kura_err kura_stop_push(struct kura_stop *st, const char *piece, size_t piece_len,
                             const char **emit /* OUT */, size_t *emit_len /* OUT */,
                             bool *stopped /* OUT */);

/* End of stream without a stop: returns the held-back text (nothing once stopped) and empties
 * the matcher. Same lifetime for *emit as kura_stop_push. */
void kura_stop_flush(struct kura_stop *st, const char **emit /* OUT */, size_t *emit_len /* OUT */);

/* Index (into the array given to create) of the stop string that completed, or -1. */
int kura_stop_matched(const struct kura_stop *st);

/* Back to the state right after create (same stop strings). */
void kura_stop_reset(struct kura_stop *st);

#ifdef __cplusplus
}
#endif
#endif
