/* ws_load: the WebSocket echo load generator of bench/ws.py.

   ws_load --port PORT [--host 127.0.0.1] [--path /ws] [--connections 64]
           [--size 32] [--binary] [--seconds 5] [--warmup 1] [--verify-every 1]

   Opens N connections, does the opening handshake on each (Version 13, no
   extension offered, so no compression; the fixed key of RFC 6455 section
   1.3, so the answer's Sec-WebSocket-Accept is known without SHA-1 here),
   then every connection keeps exactly one message in flight: a masked frame
   of SIZE bytes (text, or binary with --binary) goes out, the whole echo
   comes back, it is checked, and the next one goes out. One thread, epoll,
   non-blocking sockets, so the generator's cost per round trip is two
   system calls and a few hundred bytes touched.

   After --warmup seconds the counters restart and --seconds are measured.
   Printed on stdout, one JSON object: round trips per second, latency
   percentiles (send of a message to the end of its echo, in microseconds),
   and the share of the measured wall time this process spent on its CPU
   (user + system): near 1.0 means the generator itself was the limit.

   Each message is different: its first bytes are its sequence number in
   hex, and the rest depends on the connection, so an echo that is stale,
   from another connection or corrupted fails the check. The header and the
   sequence number of every echo are checked; the whole payload of every
   --verify-every'th (default: every one). Any failure ends the run with a
   message on stderr and exit status 1; a server's ping or pong is skipped
   and counted. */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define HIST_US (1u << 20) /* 1-us latency buckets up to about a second */

struct conn {
    int fd;
    int index;
    int want_out;      /* registered for EPOLLOUT: a send was partial */
    int in_flight;     /* a message was sent and its echo is awaited */
    uint64_t seq;      /* the sequence number of the message in flight */
    uint64_t sent_ns;  /* when it went out */
    unsigned char key[4];
    unsigned char *payload; /* the unmasked payload in flight */
    unsigned char *out;     /* the masked frame */
    size_t out_len, out_off;
    size_t head_len;        /* header + key: where the masked payload starts in out */
    unsigned char *in;
    size_t in_len, in_cap;
};

static const char *host = "127.0.0.1";
static const char *path = "/ws";
static int port = 0;
static int nconn = 64;
static size_t size = 32;
static int opcode = 1;
static double seconds = 5.0, warmup = 1.0;
static uint64_t verify_every = 1;

static uint32_t hist[HIST_US + 1];
static uint64_t completed, verified, control_frames, max_us;

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("ws_load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p)
        die("out of memory");
    return p;
}

/* The digits of the sequence number at the start of the payload: as many
   as fit, at most 16. */
static size_t seq_digits(void) { return size < 16 ? size : 16; }

static void write_seq(unsigned char *dst, uint64_t seq) {
    static const char hex[] = "0123456789abcdef";
    size_t n = seq_digits();
    for (size_t i = n; i-- > 0; seq >>= 4)
        dst[i] = (unsigned char)hex[seq & 15];
}

/* A new message on c: the next sequence number, masked into the frame. */
static void next_message(struct conn *c) {
    c->seq++;
    write_seq(c->payload, c->seq);
    unsigned char *masked = c->out + c->head_len;
    for (size_t i = 0; i < seq_digits(); i++)
        masked[i] = c->payload[i] ^ c->key[i & 3];
    c->out_off = 0;
}

static void set_events(int ep, struct conn *c, int want_out) {
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die("epoll_ctl: %s", strerror(errno));
    c->want_out = want_out;
}

/* Send what is left of c's frame; EPOLLOUT only while some is left. */
static void flush(int ep, struct conn *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            die("connection %d: send: %s", c->index, strerror(errno));
        }
        c->out_off += (size_t)n;
    }
    int want_out = c->out_off < c->out_len;
    if (want_out != c->want_out)
        set_events(ep, c, want_out);
}

static void start_message(int ep, struct conn *c) {
    next_message(c);
    c->in_flight = 1;
    c->sent_ns = now_ns();
    flush(ep, c);
}

/* An echo arrived whole: check it against the message in flight. */
static void check_echo(struct conn *c, const unsigned char *payload) {
    if (memcmp(payload, c->payload, seq_digits()) != 0)
        die("connection %d: the echo of message %llu has another sequence number: %.*s", c->index,
            (unsigned long long)c->seq, (int)seq_digits(), (const char *)payload);
    if (c->seq % verify_every == 0) {
        if (memcmp(payload, c->payload, size) != 0)
            die("connection %d: the echo of message %llu differs from what was sent", c->index,
                (unsigned long long)c->seq);
        verified++;
    }
}

/* Parse the frames in c's buffer. Returns 1 when the echo in flight came. */
static int parse(struct conn *c) {
    int done = 0;
    size_t pos = 0;
    for (;;) {
        size_t avail = c->in_len - pos;
        const unsigned char *f = c->in + pos;
        if (avail < 2)
            break;
        if (f[1] & 0x80)
            die("connection %d: the server sent a masked frame", c->index);
        uint64_t len = f[1] & 0x7f;
        size_t head = 2;
        if (len == 126) {
            if (avail < 4)
                break;
            len = ((uint64_t)f[2] << 8) | f[3];
            head = 4;
        } else if (len == 127) {
            if (avail < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | f[2 + i];
            head = 10;
        }
        if (len > c->in_cap - head)
            die("connection %d: a frame of %llu bytes (expected %zu)", c->index,
                (unsigned long long)len, size);
        if (avail < head + len)
            break;
        int op = f[0] & 0x0f;
        if (op == 0x9 || op == 0xA) {
            control_frames++;
        } else if (op == 0x8) {
            die("connection %d: the server sent a close frame (code %d)", c->index,
                len >= 2 ? (f[2] << 8) | f[3] : 1005);
        } else {
            if (f[0] != (0x80 | opcode))
                die("connection %d: a frame starting 0x%02x (expected 0x%02x: whole, opcode %d, "
                    "no RSV bit)",
                    c->index, f[0], 0x80 | opcode, opcode);
            if (len != size)
                die("connection %d: an echo of %llu bytes (sent %zu)", c->index,
                    (unsigned long long)len, size);
            if (!c->in_flight)
                die("connection %d: an echo with no message in flight", c->index);
            check_echo(c, f + head);
            c->in_flight = 0;
            done = 1;
        }
        pos += head + (size_t)len;
    }
    if (pos) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
    return done;
}

static void record_latency(uint64_t ns) {
    uint64_t us = ns / 1000;
    if (us > max_us)
        max_us = us;
    hist[us < HIST_US ? us : HIST_US]++;
}

static double percentile(double p, uint64_t total) {
    if (!total)
        return 0;
    uint64_t want = (uint64_t)(p / 100.0 * (double)total);
    if (want >= total)
        want = total - 1;
    uint64_t seen = 0;
    for (uint32_t us = 0; us <= HIST_US; us++) {
        seen += hist[us];
        if (seen > want)
            return us + 0.5; /* the middle of the bucket */
    }
    return (double)max_us;
}

/* Connect and do the opening handshake, blocking (with a timeout). */
static int open_connection(const struct sockaddr *addr, socklen_t addrlen, struct conn *c) {
    int fd = socket(addr->sa_family, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket: %s", strerror(errno));
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, addr, addrlen) < 0)
        die("connection %d: connect to %s:%d: %s", c->index, host, port, strerror(errno));
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: " KEY "\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     path, host, port);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        die("connection %d: sending the handshake: %s", c->index, strerror(errno));
    char head[8192];
    size_t len = 0;
    char *end = NULL;
    while (!end) {
        if (len == sizeof head - 1)
            die("connection %d: the handshake's answer is over %zu bytes", c->index, len);
        ssize_t r = recv(fd, head + len, sizeof head - 1 - len, 0);
        if (r <= 0)
            die("connection %d: reading the handshake's answer: %s", c->index,
                r == 0 ? "connection closed" : strerror(errno));
        len += (size_t)r;
        head[len] = 0;
        end = strstr(head, "\r\n\r\n");
    }
    if (strncmp(head, "HTTP/1.1 101", 12) != 0)
        die("connection %d: the handshake was answered %.*s", c->index,
            (int)strcspn(head, "\r\n"), head);
    /* The fields, line by line: the accept key must be right, and no
       extension may have been agreed (none was offered). */
    int accepted = 0;
    for (char *line = strstr(head, "\r\n") + 2; line < end; line = strstr(line, "\r\n") + 2) {
        size_t line_len = (size_t)(strstr(line, "\r\n") - line);
        char *colon = memchr(line, ':', line_len);
        if (!colon)
            continue;
        size_t name_len = (size_t)(colon - line);
        char *value = colon + 1;
        while (*value == ' ' || *value == '\t')
            value++;
        size_t value_len = (size_t)(line + line_len - value);
        while (value_len && (value[value_len - 1] == ' ' || value[value_len - 1] == '\t'))
            value_len--;
        if (name_len == 20 && strncasecmp(line, "sec-websocket-accept", 20) == 0)
            accepted = value_len == strlen(ACCEPT) && memcmp(value, ACCEPT, value_len) == 0;
        else if (name_len == 24 && strncasecmp(line, "sec-websocket-extensions", 24) == 0)
            die("connection %d: the server agreed an extension none was offered: %.*s", c->index,
                (int)value_len, value);
    }
    if (!accepted)
        die("connection %d: no right Sec-WebSocket-Accept in the handshake's answer", c->index);
    /* Bytes past the answer would be a frame sent before any message. */
    size_t extra = len - (size_t)(end + 4 - head);
    if (extra)
        die("connection %d: %zu bytes followed the handshake's answer", c->index, extra);
    return fd;
}

static void setup(struct conn *c) {
    c->payload = xmalloc(size ? size : 1);
    for (size_t i = 0; i < size; i++) {
        /* Text: printable ASCII (valid UTF-8); binary: every byte value. */
        if (opcode == 1)
            c->payload[i] = (unsigned char)('A' + (i * 7 + (size_t)c->index) % 58);
        else
            c->payload[i] = (unsigned char)(i * 131 + (size_t)c->index * 29 + (i >> 8));
    }
    c->head_len = size < 126 ? 2 : size < 65536 ? 4 : 10;
    c->out_len = c->head_len + 4 + size;
    c->out = xmalloc(c->out_len);
    c->out[0] = (unsigned char)(0x80 | opcode);
    if (size < 126) {
        c->out[1] = (unsigned char)(0x80 | size);
    } else if (size < 65536) {
        c->out[1] = 0x80 | 126;
        c->out[2] = (unsigned char)(size >> 8);
        c->out[3] = (unsigned char)size;
    } else {
        c->out[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            c->out[2 + i] = (unsigned char)((uint64_t)size >> (56 - 8 * i));
    }
    /* A key per connection, from a cheap generator: a load generator needs
       masking, not unpredictability. */
    uint32_t k = 0x9e3779b9u * (uint32_t)(c->index + 1) ^ 0x5bd1e995u;
    memcpy(c->key, &k, 4);
    memcpy(c->out + c->head_len, c->key, 4);
    c->head_len += 4;
    for (size_t i = 0; i < size; i++)
        c->out[c->head_len + i] = c->payload[i] ^ c->key[i & 3];
    c->in_cap = size + 14 + 256; /* an echo, or control frames */
    c->in = xmalloc(c->in_cap);
    c->in_len = 0;
}

static void usage(void) {
    fputs("usage: ws_load --port PORT [--host ADDR] [--path PATH] [--connections N] [--size BYTES]\n"
          "               [--binary] [--seconds S] [--warmup S] [--verify-every N]\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--binary")) {
            opcode = 2;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--host"))
            host = v;
        else if (!strcmp(a, "--port"))
            port = atoi(v);
        else if (!strcmp(a, "--path"))
            path = v;
        else if (!strcmp(a, "--connections"))
            nconn = atoi(v);
        else if (!strcmp(a, "--size"))
            size = (size_t)strtoull(v, NULL, 10);
        else if (!strcmp(a, "--seconds"))
            seconds = atof(v);
        else if (!strcmp(a, "--warmup"))
            warmup = atof(v);
        else if (!strcmp(a, "--verify-every"))
            verify_every = strtoull(v, NULL, 10);
        else
            usage();
    }
    if (port <= 0 || nconn <= 0 || seconds <= 0 || warmup < 0 || verify_every == 0 ||
        size > (1u << 26))
        usage();

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", port);
    int rc = getaddrinfo(host, port_s, &hints, &ai);
    if (rc)
        die("%s: %s", host, gai_strerror(rc));

    struct conn *conns = calloc((size_t)nconn, sizeof *conns);
    int ep = epoll_create1(0);
    if (!conns || ep < 0)
        die("setup: %s", strerror(errno));
    for (int i = 0; i < nconn; i++) {
        struct conn *c = &conns[i];
        c->index = i;
        setup(c);
        c->fd = open_connection(ai->ai_addr, ai->ai_addrlen, c);
        if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0)
            die("fcntl: %s", strerror(errno));
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            die("epoll_ctl: %s", strerror(errno));
    }
    freeaddrinfo(ai);

    /* Phases: 0 warm-up, 1 measured, 2 the messages in flight come back. */
    uint64_t start = now_ns();
    uint64_t measure_at = start + (uint64_t)(warmup * 1e9);
    uint64_t end_at = measure_at + (uint64_t)(seconds * 1e9);
    uint64_t t0 = 0, t1 = 0, count0 = 0, count1 = 0, drain_until = 0;
    double cpu0 = 0, cpu1 = 0;
    int phase = 0, in_flight = nconn;
    for (int i = 0; i < nconn; i++)
        start_message(ep, &conns[i]);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, 50);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait: %s", strerror(errno));
        }
        /* The phase changes before this batch is handled: every echo in it
           arrived after `now`, so it belongs to the new phase. */
        uint64_t now = now_ns();
        if (phase == 0 && now >= measure_at) {
            phase = 1;
            t0 = now;
            count0 = completed;
            cpu0 = cpu_seconds();
            memset(hist, 0, sizeof hist);
            max_us = 0;
        }
        if (phase == 1 && now >= end_at) {
            phase = 2;
            t1 = now;
            count1 = completed;
            cpu1 = cpu_seconds();
            drain_until = now + 5000000000u;
        }
        if (phase == 2 && (in_flight == 0 || now >= drain_until))
            break;
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            uint32_t what = events[i].events;
            if (what & EPOLLOUT)
                flush(ep, c);
            if (!(what & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                continue;
            ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
            if (r == 0)
                die("connection %d: the server closed the connection", c->index);
            if (r < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                    continue;
                die("connection %d: recv: %s", c->index, strerror(errno));
            }
            c->in_len += (size_t)r;
            if (!parse(c))
                continue;
            completed++;
            if (phase == 1)
                record_latency(now_ns() - c->sent_ns);
            if (phase < 2)
                start_message(ep, c);
            else
                in_flight--;
        }
    }

    /* The close handshake on every connection at once: our close frame
       (1000), then read to the server's end of the connection. */
    static const unsigned char close_frame[] = {0x88, 0x82, 0x12, 0x34, 0x56, 0x78,
                                                0x03 ^ 0x12, 0xe8 ^ 0x34};
    int open = 0;
    for (int i = 0; i < nconn; i++) {
        struct conn *c = &conns[i];
        if (c->in_flight || c->out_off < c->out_len) {
            close(c->fd); /* the drain timed out: nothing clean to do */
            c->fd = -1;
            continue;
        }
        if (send(c->fd, close_frame, sizeof close_frame, MSG_NOSIGNAL) != sizeof close_frame) {
            close(c->fd);
            c->fd = -1;
            continue;
        }
        set_events(ep, c, 0);
        open++;
    }
    int clean = 0;
    uint64_t close_until = now_ns() + 3000000000u;
    while (open > 0 && now_ns() < close_until) {
        int n = epoll_wait(ep, events, 256, 50);
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            unsigned char scratch[4096];
            ssize_t r = recv(c->fd, scratch, sizeof scratch, 0);
            if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EINTR)))
                continue;
            clean += r == 0;
            close(c->fd);
            c->fd = -1;
            open--;
        }
    }
    for (int i = 0; i < nconn; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);

    uint64_t messages = count1 - count0;
    double wall = (double)(t1 - t0) / 1e9;
    printf("{\"connections\": %d, \"size\": %zu, \"opcode\": \"%s\", \"seconds\": %.3f, "
           "\"messages\": %llu, \"msgs_per_s\": %.1f, \"p50_us\": %.1f, \"p90_us\": %.1f, "
           "\"p99_us\": %.1f, \"p999_us\": %.1f, \"max_us\": %llu, \"load_cpu\": %.3f, "
           "\"verified\": %llu, \"control_frames\": %llu, \"clean_closes\": %d}\n",
           nconn, size, opcode == 1 ? "text" : "binary", wall, (unsigned long long)messages,
           wall > 0 ? (double)messages / wall : 0.0, percentile(50, messages),
           percentile(90, messages), percentile(99, messages), percentile(99.9, messages),
           (unsigned long long)max_us, wall > 0 ? (cpu1 - cpu0) / wall : 0.0,
           (unsigned long long)verified, (unsigned long long)control_frames, clean);
    return 0;
}
