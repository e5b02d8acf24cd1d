/* Every size cap for input that comes from outside, in one place. */
#ifndef KURA_CORE_LIMITS_H
#define KURA_CORE_LIMITS_H

/* GGUF */
#define KURA_GGUF_MAX_KV            (1u << 20)  /* metadata key/value pairs */
#define KURA_GGUF_MAX_TENSORS       (1u << 20)  /* tensor infos */
#define KURA_GGUF_MAX_STRING        (1u << 30)  /* bytes in one string (chat templates can be big) */
#define KURA_GGUF_MAX_KEY           65535u      /* bytes in one key / tensor name */
#define KURA_GGUF_MAX_ARRAY         (1u << 28)  /* elements in one metadata array */
#define KURA_GGUF_MAX_DIMS          4u
#define KURA_GGUF_MAX_ALIGNMENT     (1u << 16)

/* Model */
#define KURA_MAX_LAYERS             1024
#define KURA_MAX_VOCAB              (1 << 22)
#define KURA_MAX_CTX                (1 << 20)
#define KURA_MAX_TOKEN_BYTES        1024        /* bytes in one vocabulary entry */
#define KURA_MAX_EMBD               (1 << 16)   /* model width */
#define KURA_MAX_FF                 (1 << 18)   /* feed-forward width */
#define KURA_MAX_HEADS              1024        /* attention heads */
#define KURA_MAX_HEAD_DIM           1024        /* elements per attention head */

/* Text */
#define KURA_MAX_PROMPT_BYTES       (64u << 20)

/* Sampling, stop strings, chat templates */
#define KURA_SAMPLE_MAX_HISTORY     (1 << 20)   /* tokens remembered for penalties (last_n = -1) */
#define KURA_STOP_MAX_STRINGS       64u         /* stop strings per request */
#define KURA_STOP_MAX_LEN           4096u       /* bytes in one stop string */
#define KURA_STOP_MAX_PIECE         (16u << 20) /* bytes pushed into a stop matcher at once */
#define KURA_CHAT_MAX_MSGS          (1u << 16)  /* messages in one chat */
#define KURA_CHAT_MAX_BYTES         KURA_MAX_PROMPT_BYTES /* formatted prompt */

/* Server */
#define KURA_SERVE_MAX_UPSTREAM     256 /* upstream (policy egress) requests in flight */
#define KURA_SERVE_MAX_BODY_TOTAL   (512ull << 20) /* request body bytes buffered over all
                                                      connections; beyond: 503 */

/* State directory, keys, audit */
#define KURA_MAX_PATH               4096        /* bytes in a path we build */
#define KURA_MAX_PASSPHRASE         1024        /* bytes in a passphrase */
#define KURA_KEYS_MAX_FILE          (1u << 20)  /* bytes in keys/keys.json */
#define KURA_KEYS_MAX_DATA_KEYS     4096        /* data keys (purposes) in one key file */
#define KURA_KEYS_MAX_PURPOSE       128         /* bytes in a data key purpose name */
#define KURA_ARGON2_MAX_OPSLIMIT    64ull       /* refuse key files asking for more work */
#define KURA_ARGON2_MAX_MEMLIMIT    (4ull << 30)/* ... or more memory than this */
#define KURA_AUDIT_MAX_LINE         (64u << 10) /* bytes in one audit record line */
#define KURA_AUDIT_MAX_FIELD        4096        /* bytes in actor / action / object / outcome */
#define KURA_AUDIT_MAX_DETAILS      (48u << 10) /* bytes of compact details JSON */
#define KURA_AUDIT_MAX_JSON_DEPTH   32          /* nesting depth of details */
#define KURA_AUDIT_TAIL_WINDOW      (8u * KURA_AUDIT_MAX_LINE) /* bytes scanned for a torn tail */
#define KURA_AUDIT_MAX_GARBAGE      64          /* unparseable lines one seal record may cover */
#define KURA_AUDIT_MAX_HEAD_FILE    4096        /* bytes in audit/head.json */

/* Policy engine */
#define KURA_POLICY_MAX_TEXT        (16u << 20) /* bytes scanned by one kura_detect call */
#define KURA_POLICY_MAX_FINDINGS    (1u << 20)  /* findings per text */
#define KURA_POLICY_MAX_FILE        (1u << 20)  /* bytes in a policy file */
#define KURA_POLICY_MAX_RULES       1024        /* operator rules in a policy */
#define KURA_POLICY_MAX_KEYWORDS    4096        /* keywords in one rule */
#define KURA_POLICY_MAX_DESTS       256         /* destinations in a policy */
#define KURA_POLICY_MAX_STRING      4096        /* bytes in one policy string */
#define KURA_POLICY_MAX_PLACEHOLDERS (1u << 16) /* distinct values pseudonymised in one request */
#define KURA_EGRESS_MAX_RESPONSE    (32u << 20) /* bytes accepted from an upstream */
#endif
