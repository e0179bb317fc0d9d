/* ws_echo: a minimal WebSocket echo server in C, the yardstick of bench/ws.py.

   ws_echo --port PORT [--host 127.0.0.1]

   Not a server to use: it exists to show how fast the load generator
   (ws_load.c) can go. Run on one core with the generator on the other, its
   figure is the most the generator can measure; when that is well above the
   fastest Python server's, the generator is not what limits any of them.

   One thread, epoll, non-blocking sockets. It answers any GET carrying a
   Sec-WebSocket-Key with a 101 (SHA-1 and base64 are here, so any key
   works; no extension is ever agreed), then echoes every data frame as it
   came (opcode and FIN kept, payload unmasked), answers a ping with a pong
   and a close frame with a close frame, then closes. It checks only what
   framing needs (the mask bit, the lengths): no UTF-8, no fragment rules. */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FRAME (64u << 20)

struct buf {
    unsigned char *data;
    size_t len, cap;
};

struct conn {
    int fd;
    int open;        /* the handshake is done */
    int closing;     /* close once the output is written */
    int want_out;
    struct buf in, out;
    size_t out_off;
};

/* -- SHA-1 (FIPS 180-4), for Sec-WebSocket-Accept ---------------------------- */

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(uint32_t h[5], const unsigned char *p) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5a827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ed9eba1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8f1bbcdc;
        } else {
            f = b ^ c ^ d;
            k = 0xca62c1d6;
        }
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

static void sha1(const unsigned char *msg, size_t len, unsigned char out[20]) {
    uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    size_t full = len / 64 * 64;
    for (size_t i = 0; i < full; i += 64)
        sha1_block(h, msg + i);
    /* The tail, the 0x80 byte and the bit length: one or two more blocks. */
    unsigned char last[128] = {0};
    size_t rest = len - full;
    memcpy(last, msg + full, rest);
    last[rest] = 0x80;
    size_t blocks = rest + 9 > 64 ? 2 : 1;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        last[blocks * 64 - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t i = 0; i < blocks; i++)
        sha1_block(h, last + 64 * i);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = (unsigned char)(h[i] >> (24 - 8 * j));
}

static void base64(const unsigned char *in, size_t len, char *out) {
    static const char table[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = table[v >> 18 & 63];
        out[o++] = table[v >> 12 & 63];
        out[o++] = i + 1 < len ? table[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? table[v & 63] : '=';
    }
    out[o] = 0;
}

/* -- buffers and connections ------------------------------------------------- */

static void reserve(struct buf *b, size_t extra) {
    if (b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra)
        cap *= 2;
    unsigned char *p = realloc(b->data, cap);
    if (!p) {
        fputs("ws_echo: out of memory\n", stderr);
        exit(1);
    }
    b->data = p;
    b->cap = cap;
}

static void append(struct buf *b, const void *data, size_t len) {
    reserve(b, len);
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

static int ep;

static void drop(struct conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in.data);
    free(c->out.data);
    free(c);
}

/* Write what is queued; returns 0 if the connection was dropped. */
static int flush(struct conn *c) {
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            drop(c);
            return 0;
        }
        c->out_off += (size_t)n;
    }
    if (c->out_off == c->out.len) {
        c->out.len = c->out_off = 0;
        if (c->closing) {
            drop(c);
            return 0;
        }
    }
    int want_out = c->out.len > 0;
    if (want_out != c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = want_out;
    }
    return 1;
}

/* The opening handshake, once the request head is in; returns the bytes
   it used, 0 if more are needed, -1 to drop the connection. */
static long handshake(struct conn *c) {
    unsigned char *end = memmem(c->in.data, c->in.len, "\r\n\r\n", 4);
    if (!end)
        return c->in.len > 16384 ? -1 : 0;
    size_t head_len = (size_t)(end - c->in.data) + 4;
    const char *key = NULL;
    size_t key_len = 0;
    char *line = (char *)c->in.data;
    char *stop = (char *)end;
    while (line < stop) {
        char *eol = memmem(line, (size_t)(stop + 2 - line), "\r\n", 2);
        if (!eol)
            break;
        if (eol - line > 18 && strncasecmp(line, "sec-websocket-key:", 18) == 0) {
            key = line + 18;
            while (*key == ' ' || *key == '\t')
                key++;
            key_len = (size_t)(eol - key);
            while (key_len && (key[key_len - 1] == ' ' || key[key_len - 1] == '\t'))
                key_len--;
        }
        line = eol + 2;
    }
    if (!key || key_len > 100)
        return -1;
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char joined[160], digest[20];
    memcpy(joined, key, key_len);
    memcpy(joined + key_len, guid, sizeof guid - 1);
    sha1(joined, key_len + sizeof guid - 1, digest);
    char accept[32];
    base64(digest, 20, accept);
    char answer[256];
    int n = snprintf(answer, sizeof answer,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    append(&c->out, answer, (size_t)n);
    c->open = 1;
    return (long)head_len;
}

/* Echo every whole frame in c's input; returns the bytes used, -1 to drop. */
static long frames(struct conn *c) {
    size_t pos = 0;
    while (!c->closing) {
        const unsigned char *f = c->in.data + pos;
        size_t avail = c->in.len - pos;
        if (avail < 2)
            break;
        if (!(f[1] & 0x80))
            return -1; /* a client's frames are masked */
        uint64_t len = f[1] & 0x7f;
        size_t head = 2;
        if (len == 126) {
            if (avail < 4)
                break;
            len = (uint64_t)f[2] << 8 | f[3];
            head = 4;
        } else if (len == 127) {
            if (avail < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | f[2 + i];
            head = 10;
        }
        if (len > MAX_FRAME)
            return -1;
        if (avail < head + 4 + len)
            break;
        const unsigned char *key = f + head;
        const unsigned char *payload = key + 4;
        int op = f[0] & 0x0f;
        unsigned char first = op == 0x9 ? 0x8A : f[0];
        if (op == 0xA) { /* an unsolicited pong: nothing to answer */
            pos += head + 4 + (size_t)len;
            continue;
        }
        unsigned char out_head[10];
        size_t out_head_len;
        out_head[0] = first;
        if (len < 126) {
            out_head[1] = (unsigned char)len;
            out_head_len = 2;
        } else if (len < 65536) {
            out_head[1] = 126;
            out_head[2] = (unsigned char)(len >> 8);
            out_head[3] = (unsigned char)len;
            out_head_len = 4;
        } else {
            out_head[1] = 127;
            for (int i = 0; i < 8; i++)
                out_head[2 + i] = (unsigned char)(len >> (56 - 8 * i));
            out_head_len = 10;
        }
        append(&c->out, out_head, out_head_len);
        reserve(&c->out, (size_t)len);
        unsigned char *dst = c->out.data + c->out.len;
        /* Unmask eight bytes at a time, then the tail. */
        uint64_t key8;
        uint32_t key4;
        memcpy(&key4, key, 4);
        key8 = (uint64_t)key4 << 32 | key4;
        size_t i = 0;
        for (; i + 8 <= len; i += 8) {
            uint64_t v;
            memcpy(&v, payload + i, 8);
            v ^= key8;
            memcpy(dst + i, &v, 8);
        }
        for (; i < len; i++)
            dst[i] = payload[i] ^ key[i & 3];
        c->out.len += (size_t)len;
        if (op == 0x8)
            c->closing = 1;
        pos += head + 4 + (size_t)len;
    }
    return (long)pos;
}

static void readable(struct conn *c) {
    reserve(&c->in, 65536);
    ssize_t n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        drop(c);
        return;
    }
    if (n < 0)
        return;
    c->in.len += (size_t)n;
    long used = 0;
    if (!c->open) {
        used = handshake(c);
        if (used > 0) {
            memmove(c->in.data, c->in.data + used, c->in.len - (size_t)used);
            c->in.len -= (size_t)used;
            used = 0;
        }
    }
    if (used >= 0 && c->open)
        used = frames(c);
    if (used < 0) {
        drop(c);
        return;
    }
    if (used) {
        memmove(c->in.data, c->in.data + used, c->in.len - (size_t)used);
        c->in.len -= (size_t)used;
    }
    if (c->out.len)
        flush(c);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--host"))
            host = argv[i + 1];
        else if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
    }
    if (port <= 0) {
        fputs("usage: ws_echo --port PORT [--host ADDR]\n", stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "ws_echo: %s is not an IPv4 address\n", host);
        return 2;
    }
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 1024) < 0) {
        perror("ws_echo: bind/listen");
        return 1;
    }
    ep = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        if (n < 0 && errno != EINTR) {
            perror("ws_echo: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    c = calloc(1, sizeof *c);
                    if (!c) {
                        close(fd);
                        continue;
                    }
                    c->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            if (events[i].events & EPOLLOUT) {
                if (!flush(c))
                    continue;
            }
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                readable(c);
        }
    }
}
