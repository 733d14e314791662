/*
 * The timing truth for benchmarking benchmark clients.
 *
 * An OpenAI-compatible /v1/chat/completions server on 127.0.0.1 that streams
 * tokens on a known schedule (TTFT, then inter-token gaps, each with uniform
 * jitter) and logs, per request, when the request arrived and when each token
 * event left, as CLOCK_REALTIME seconds. A thread per connection sleeps to
 * absolute deadlines, so one stream's schedule never waits on another's; the
 * time each write() takes is logged too: it bounds the truth's own error.
 *
 * Compiled C rather than Python so that the server's own CPU use stays small
 * next to the clients under test on the same cores.
 *
 * usage: truth_server LOG_PATH TTFT_MS ITL_MS JITTER SEED
 * prints "http://127.0.0.1:PORT" on its first line, serves until killed.
 * One JSON line per finished chat request is appended to LOG_PATH:
 *   {"arrival":T,"stream":1,"max_tokens":N,"sends":[T,...],"write_max_s":S}
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double g_ttft_s, g_itl_s, g_jitter;
static unsigned g_seed;
static FILE *g_log;
static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t g_seed_lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_until(double deadline) {
    struct timespec ts;
    ts.tv_sec = (time_t)deadline;
    ts.tv_nsec = (long)((deadline - (double)ts.tv_sec) * 1e9);
    while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* xorshift per connection, seeded from the global seed and a connection counter */
static double uniform(uint64_t *state) {
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return (double)(x >> 11) / 9007199254740992.0;
}

static double jittered(double base, uint64_t *state) {
    return base * (1.0 + g_jitter * (2.0 * uniform(state) - 1.0));
}

static int write_all(int fd, const char *data, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        data += w;
        n -= (size_t)w;
    }
    return 0;
}

static int send_chunk(int fd, const char *data, size_t n) {
    char head[32];
    int h = snprintf(head, sizeof head, "%zx\r\n", n);
    char buf[1024];
    if ((size_t)h + n + 2 <= sizeof buf) { /* one write, one packet */
        memcpy(buf, head, (size_t)h);
        memcpy(buf + h, data, n);
        memcpy(buf + h + n, "\r\n", 2);
        return write_all(fd, buf, (size_t)h + n + 2);
    }
    if (write_all(fd, head, (size_t)h) < 0 || write_all(fd, data, n) < 0) return -1;
    return write_all(fd, "\r\n", 2);
}

static int send_response(int fd, int status, const char *type, const char *body) {
    char head[256];
    size_t n = strlen(body);
    int h = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", status,
                     status == 200 ? "OK" : "Not Found", type, n);
    if (write_all(fd, head, (size_t)h) < 0) return -1;
    return write_all(fd, body, n);
}

/* the integer after "key": in a JSON body, or fallback */
static long json_int(const char *body, const char *key, long fallback) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\"", key);
    const char *at = strstr(body, pattern);
    if (!at) return fallback;
    at += strlen(pattern);
    while (*at == ' ' || *at == ':') at++;
    char *end;
    long value = strtol(at, &end, 10);
    return end == at ? fallback : value;
}

static int json_true(const char *body, const char *key) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\"", key);
    const char *at = strstr(body, pattern);
    if (!at) return 0;
    at += strlen(pattern);
    while (*at == ' ' || *at == ':') at++;
    return strncmp(at, "true", 4) == 0;
}

/* words in the request body: a rough prompt size for usage (no tool under test reads it for timing) */
static long count_words(const char *body) {
    long words = 0;
    int in_word = 0;
    for (const char *p = body; *p; p++) {
        int space = (*p == ' ' || *p == '\n' || *p == '\t');
        if (!space && !in_word) words++;
        in_word = !space;
    }
    return words;
}

static void log_request(double arrival, int stream, long max_tokens, const double *sends, long n,
                        double write_max) {
    pthread_mutex_lock(&g_log_lock);
    fprintf(g_log, "{\"arrival\":%.6f,\"stream\":%d,\"max_tokens\":%ld,\"sends\":[", arrival, stream,
            max_tokens);
    for (long i = 0; i < n; i++) fprintf(g_log, i ? ",%.6f" : "%.6f", sends[i]);
    fprintf(g_log, "],\"write_max_s\":%.9f}\n", write_max);
    fflush(g_log);
    pthread_mutex_unlock(&g_log_lock);
}

static const char *CHUNK_HEAD =
    "data: {\"id\":\"chatcmpl-truth\",\"object\":\"chat.completion.chunk\",\"created\":%ld,"
    "\"model\":\"truth-model\",\"choices\":[{\"index\":0,";

static int chat(int fd, const char *body, double arrival, uint64_t *rng) {
    long max_tokens = json_int(body, "max_completion_tokens", -1);
    if (max_tokens < 0) max_tokens = json_int(body, "max_tokens", 16);
    if (max_tokens < 1) max_tokens = 1;
    if (max_tokens > 100000) max_tokens = 100000;
    int stream = json_true(body, "stream");
    long prompt_tokens = count_words(body);
    long created = (long)arrival;
    double *sends = calloc((size_t)max_tokens, sizeof(double));
    double write_max = 0.0;
    long sent = 0;
    char event[1024];
    int rc = 0;
    if (!stream) {
        double done = arrival + jittered(g_ttft_s, rng);
        for (long i = 1; i < max_tokens; i++) done += jittered(g_itl_s, rng);
        sleep_until(done);
        char *text = malloc((size_t)max_tokens * 4 + 1);
        for (long i = 0; i < max_tokens; i++) memcpy(text + i * 4, " tok", 4);
        text[max_tokens * 4] = 0;
        size_t size = (size_t)max_tokens * 4 + 512;
        char *payload = malloc(size);
        snprintf(payload, size,
                 "{\"id\":\"chatcmpl-truth\",\"object\":\"chat.completion\",\"created\":%ld,"
                 "\"model\":\"truth-model\",\"choices\":[{\"index\":0,\"finish_reason\":\"length\","
                 "\"message\":{\"role\":\"assistant\",\"content\":\"%s\"}}],"
                 "\"usage\":{\"prompt_tokens\":%ld,\"completion_tokens\":%ld,\"total_tokens\":%ld}}",
                 created, text, prompt_tokens, max_tokens, prompt_tokens + max_tokens);
        double before = now();
        rc = send_response(fd, 200, "application/json", payload);
        sends[0] = now();
        write_max = sends[0] - before;
        free(text);
        free(payload);
        log_request(arrival, 0, max_tokens, sends, 1, write_max);
        free(sends);
        return rc;
    }
    const char *head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        "Transfer-Encoding: chunked\r\n\r\n";
    if (write_all(fd, head, strlen(head)) < 0) goto fail;
    int n = snprintf(event, sizeof event, CHUNK_HEAD, created);
    n += snprintf(event + n, sizeof event - (size_t)n,
                  "\"delta\":{\"role\":\"assistant\",\"content\":null},\"finish_reason\":null}]}\n\n");
    if (send_chunk(fd, event, (size_t)n) < 0) goto fail;
    double deadline = arrival + jittered(g_ttft_s, rng);
    for (; sent < max_tokens; sent++) {
        sleep_until(deadline);
        n = snprintf(event, sizeof event, CHUNK_HEAD, created);
        n += snprintf(event + n, sizeof event - (size_t)n,
                      "\"delta\":{\"content\":\" tok\"},\"finish_reason\":null}]}\n\n");
        double before = now();
        if (send_chunk(fd, event, (size_t)n) < 0) goto fail;
        double after = now();
        sends[sent] = after; /* the bytes left between before and after */
        if (after - before > write_max) write_max = after - before;
        deadline += jittered(g_itl_s, rng);
    }
    n = snprintf(event, sizeof event, CHUNK_HEAD, created);
    n += snprintf(event + n, sizeof event - (size_t)n, "\"delta\":{},\"finish_reason\":\"length\"}]}\n\n");
    if (send_chunk(fd, event, (size_t)n) < 0) goto fail;
    n = snprintf(event, sizeof event,
                 "data: {\"id\":\"chatcmpl-truth\",\"object\":\"chat.completion.chunk\",\"created\":%ld,"
                 "\"model\":\"truth-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":%ld,"
                 "\"completion_tokens\":%ld,\"total_tokens\":%ld}}\n\ndata: [DONE]\n\n",
                 created, prompt_tokens, max_tokens, prompt_tokens + max_tokens);
    if (send_chunk(fd, event, (size_t)n) < 0) goto fail;
    if (write_all(fd, "0\r\n\r\n", 5) < 0) goto fail;
    log_request(arrival, 1, max_tokens, sends, sent, write_max);
    free(sends);
    return 0;
fail:
    log_request(arrival, 1, max_tokens, sends, sent, write_max);
    free(sends);
    return -1;
}

struct connection {
    int fd;
    uint64_t rng;
};

static void *serve(void *arg) {
    struct connection *conn = arg;
    int fd = conn->fd;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        char *end;
        while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
            if (len == cap) {
                cap *= 2;
                buf = realloc(buf, cap + 1);
            }
            ssize_t r = recv(fd, buf + len, cap - len, 0);
            if (r <= 0) goto done;
            len += (size_t)r;
        }
        size_t header_len = (size_t)(end - buf) + 4;
        buf[header_len - 1] = 0;
        long body_len = 0;
        char *cl = strcasestr(buf, "\r\ncontent-length:");
        if (cl) body_len = strtol(cl + 17, NULL, 10);
        int close_after = strcasestr(buf, "\r\nconnection: close") != NULL;
        while (len < header_len + (size_t)body_len) {
            if (header_len + (size_t)body_len > cap) {
                cap = header_len + (size_t)body_len;
                buf = realloc(buf, cap + 1);
            }
            ssize_t r = recv(fd, buf + len, cap - len, 0);
            if (r <= 0) goto done;
            len += (size_t)r;
        }
        double arrival = now(); /* the whole request is here: the server can start */
        char saved = buf[header_len + body_len];
        buf[header_len + body_len] = 0;
        const char *body = buf + header_len;
        int rc;
        if (strncmp(buf, "POST /v1/chat/completions", 25) == 0) {
            rc = chat(fd, body, arrival, &conn->rng);
        } else if (strncmp(buf, "GET /v1/models", 14) == 0) {
            rc = send_response(fd, 200, "application/json",
                               "{\"object\":\"list\",\"data\":[{\"id\":\"truth-model\",\"object\":\"model\","
                               "\"owned_by\":\"truth\",\"created\":0}]}");
        } else if (strncmp(buf, "GET /health", 11) == 0) {
            rc = send_response(fd, 200, "application/json", "{\"status\":\"ok\"}");
        } else {
            rc = send_response(fd, 404, "application/json", "{\"error\":{\"code\":404,\"message\":\"not found\"}}");
        }
        buf[header_len + body_len] = saved;
        if (rc < 0 || close_after) break;
        memmove(buf, buf + header_len + body_len, len - header_len - (size_t)body_len);
        len -= header_len + (size_t)body_len;
    }
done:
    close(fd);
    free(buf);
    free(conn);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s LOG_PATH TTFT_MS ITL_MS JITTER SEED\n", argv[0]);
        return 2;
    }
    g_log = fopen(argv[1], "a");
    if (!g_log) {
        perror(argv[1]);
        return 2;
    }
    g_ttft_s = atof(argv[2]) / 1000.0;
    g_itl_s = atof(argv[3]) / 1000.0;
    g_jitter = atof(argv[4]);
    g_seed = (unsigned)strtoul(argv[5], NULL, 10);
    signal(SIGPIPE, SIG_IGN);
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listener, 1024) < 0) {
        perror("bind/listen");
        return 1;
    }
    socklen_t size = sizeof addr;
    getsockname(listener, (struct sockaddr *)&addr, &size);
    printf("http://127.0.0.1:%d\n", ntohs(addr.sin_port));
    fflush(stdout);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    uint64_t counter = 0;
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            perror("accept");
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct connection *conn = malloc(sizeof *conn);
        conn->fd = fd;
        pthread_mutex_lock(&g_seed_lock);
        conn->rng = ((uint64_t)g_seed << 32) ^ (++counter * 0x9E3779B97F4A7C15ULL) ^ 0x2545F4914F6CDD1DULL;
        pthread_mutex_unlock(&g_seed_lock);
        pthread_t thread;
        if (pthread_create(&thread, &attr, serve, conn) != 0) {
            close(fd);
            free(conn);
        }
    }
}
