/*
 * treadle.http._speedups: an optional C fast path for the request parser.
 *
 * Why it is shaped like this: two parsers that frame the same bytes differently
 * are where request smuggling lives (aiohttp's C and Python parsers disagreed:
 * CVE-2023-47641). So this is not a second parser. It has one function per hot
 * spot, each a pure function of bytes, and each may only *accept* what the
 * Python parser accepts, with the same result, or *defer*: return False, and the
 * Python code parses the same bytes from scratch and gives its verdict (an
 * error with its precise status, or an acceptance of a rare form). It never
 * rejects anything itself. So a bug here can only be a missed fast path, or an
 * acceptance the Python parser would not make; tests/http/test_speedups.py
 * compares the two on every input of the parser's test corpus and on
 * generated ones, and the whole parser suite runs with and without it.
 *
 * Everything the parser must decide beyond the grammar of one line (Host,
 * Content-Length against Transfer-Encoding, Connection, the limits' statuses)
 * stays in Python, in one place.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Byte classes (RFC 9110 5.6.2, RFC 9112 3): bit flags in one table. */
#define C_TCHAR 1  /* token characters: method and field names */
#define C_VALUE 2  /* field-vchar / SP / HTAB, obs-text included; no CTL */
#define C_TARGET 4 /* printable ASCII, no space: a request-target byte */
#define C_HEX 8    /* a hex digit */

static unsigned char classes[256];

static void
init_classes(void)
{
    const char *tchar_punct = "!#$%&'*+-.^_`|~";
    for (int c = 0; c < 256; c++) {
        unsigned char f = 0;
        if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
            || (c != 0 && strchr(tchar_punct, c) != NULL)) {
            f |= C_TCHAR;
        }
        if (c == '\t' || (c >= 0x20 && c <= 0x7e) || c >= 0x80) {
            f |= C_VALUE;
        }
        if (c >= 0x21 && c <= 0x7e) {
            f |= C_TARGET;
        }
        if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f')) {
            f |= C_HEX;
        }
        classes[c] = f;
    }
}

/* The lowered names of the fields that frame a message (the parser's
 * _FRAMING_LINE), by length first: most names are not one of them. */
static const char *const framing_names[] = {
    "host", "content-length", "transfer-encoding", "connection", "expect", "upgrade",
};
#define N_FRAMING_NAMES (sizeof(framing_names) / sizeof(framing_names[0]))

/* Common methods as interned str, so a request's method is shared, not made. */
static const char *const common_methods[] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH",
};
#define N_COMMON_METHODS (sizeof(common_methods) / sizeof(common_methods[0]))
static PyObject *common_method_objects[N_COMMON_METHODS];

static inline unsigned char
lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* Whether a field name is one of framing_names, case-insensitively. */
static int
framing_field(const unsigned char *name, Py_ssize_t len)
{
    for (size_t i = 0; i < N_FRAMING_NAMES; i++) {
        const char *want = framing_names[i];
        if ((Py_ssize_t)strlen(want) != len) {
            continue;
        }
        Py_ssize_t j = 0;
        while (j < len && lower(name[j]) == (unsigned char)want[j]) {
            j++;
        }
        if (j == len) {
            return 1;
        }
    }
    return 0;
}

static PyObject *
method_object(const unsigned char *m, Py_ssize_t len)
{
    for (size_t i = 0; i < N_COMMON_METHODS; i++) {
        if ((Py_ssize_t)strlen(common_methods[i]) == len && memcmp(common_methods[i], m, (size_t)len) == 0) {
            Py_INCREF(common_method_objects[i]);
            return common_method_objects[i];
        }
    }
    return PyUnicode_DecodeASCII((const char *)m, len, NULL);
}

/* First "\r\n\r\n" in data[from:n], or -1. */
static Py_ssize_t
find_head_end(const unsigned char *data, Py_ssize_t from, Py_ssize_t n)
{
    const unsigned char *p = data + from;
    const unsigned char *stop = data + n - 3;
    while (p < stop) {
        p = memchr(p, '\r', (size_t)(stop - p));
        if (p == NULL) {
            return -1;
        }
        if (p[1] == '\n' && p[2] == '\r' && p[3] == '\n') {
            return p - data;
        }
        p++;
    }
    return -1;
}

/* Whether any of 8 bytes is below 0x20 (a CTL, HTAB and CR included) or is
 * DEL: the bytes a field value's fast scan stops at (bytes of 0x80 and up,
 * obs-text, are not found). Exact for the yes/no answer (Bit Twiddling
 * Hacks, "determine if a word has a byte less than n"). */
static inline int
has_ctl(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t below_space = (x - ones * 0x20) & ~x & highs;
    uint64_t del = x ^ (ones * 0x7f);
    return (below_space | ((del - ones) & ~del & highs)) != 0;
}

/* At most this many framing lines are remembered while a block is checked; a
 * block with more is left to the Python code. */
#define MAX_FRAMING_LINES 16

/* Whether block[0:len] is a valid field block within the limits: every line
 * token ":" *value-char CRLF, no line longer than max_field, at most
 * max_fields lines. The framing lines (by name) go to lines[] as (start,
 * length) pairs, their count to *n_lines. */
static int
valid_block(const unsigned char *block, Py_ssize_t len, Py_ssize_t max_field, Py_ssize_t max_fields,
            Py_ssize_t lines[][2], int *n_lines)
{
    const unsigned char *p = block;
    const unsigned char *end = block + len;
    Py_ssize_t count = 0;
    *n_lines = 0;
    while (p < end) {
        const unsigned char *start = p;
        while (p < end && (classes[*p] & C_TCHAR)) {
            p++;
        }
        if (p == start || p >= end || *p != ':') {
            return 0;
        }
        const unsigned char *colon = p++;
        /* Values are most of a block: skip 8 plain bytes at a time. */
        while (end - p >= 8) {
            uint64_t word;
            memcpy(&word, p, 8);
            if (has_ctl(word)) {
                break;
            }
            p += 8;
        }
        while (p < end && (classes[*p] & C_VALUE)) {
            p++;
        }
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
            return 0;
        }
        if (p - start > max_field) {
            return 0;
        }
        if (framing_field(start, colon - start)) {
            if (*n_lines == MAX_FRAMING_LINES) {
                return 0;
            }
            lines[*n_lines][0] = start - block;
            lines[*n_lines][1] = p - start;
            (*n_lines)++;
        }
        p += 2;
        if (++count > max_fields) {
            return 0;
        }
    }
    return 1;
}

/* The framing lines of a valid block ("name:value", lowered, without CRLF),
 * in order, joined by LF: exactly what the parser's _framing_fields gives. */
static PyObject *
framing_fields(const unsigned char *block, Py_ssize_t lines[][2], int n_lines)
{
    Py_ssize_t total = n_lines > 0 ? n_lines - 1 : 0;
    for (int i = 0; i < n_lines; i++) {
        total += lines[i][1];
    }
    PyObject *found = PyBytes_FromStringAndSize(NULL, total);
    if (found == NULL) {
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(found);
    for (int i = 0; i < n_lines; i++) {
        if (i > 0) {
            *out++ = '\n';
        }
        const unsigned char *q = block + lines[i][0];
        for (Py_ssize_t k = 0; k < lines[i][1]; k++) {
            out[k] = lower(q[k]);
        }
        out += lines[i][1];
    }
    return found;
}

/* A limit or budget as a Py_ssize_t: an int too large for one is clamped (a
 * limit that high is as good as none), so no valid Limits makes this raise. */
static int
as_size(PyObject *obj, Py_ssize_t *out)
{
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow > 0 || v > PY_SSIZE_T_MAX) {
        *out = PY_SSIZE_T_MAX;
    }
    else if (overflow < 0 || v < PY_SSIZE_T_MIN) {
        *out = PY_SSIZE_T_MIN;
    }
    else {
        *out = (Py_ssize_t)v;
    }
    return 0;
}

PyDoc_STRVAR(scan_head_doc,
"scan_head(buf, pos, last, limits)\n"
"\n"
"The common request head at buf[pos:], if it is one. Returns None when buf\n"
"holds no blank line after pos (the head is incomplete); False when the parser's\n"
"Python code must judge it: anything but a request line with an origin-form\n"
"target, a method other than CONNECT and HTTP/1.0 or 1.1, followed by a valid\n"
"header block within the limits. Otherwise\n"
"(method, target, minor, block, found, end): method and target as str, the\n"
"minor version, the header block with each line's CRLF (`last` itself when\n"
"equal to it, and then found is None), its framing lines as the parser's\n"
"_framing_fields gives them, and the position after the blank line. `limits`\n"
"is (max_request_line, max_field_size, max_header_block, max_headers).");

static PyObject *
scan_head(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "scan_head() takes exactly 4 arguments");
        return NULL;
    }
    PyObject *buf = args[0];
    PyObject *last = args[2];
    PyObject *limit_tuple = args[3];
    if (!PyBytes_CheckExact(buf)) {
        Py_RETURN_FALSE; /* a bytes subclass or another buffer: Python's to judge */
    }
    if (!PyTuple_CheckExact(limit_tuple) || PyTuple_GET_SIZE(limit_tuple) != 4) {
        PyErr_SetString(PyExc_TypeError, "scan_head() needs a tuple of 4 limits");
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t limits[4];
    for (int i = 0; i < 4; i++) {
        if (as_size(PyTuple_GET_ITEM(limit_tuple, i), &limits[i]) < 0) {
            return NULL;
        }
    }
    Py_ssize_t max_request_line = limits[0], max_field = limits[1];
    Py_ssize_t max_block = limits[2], max_fields = limits[3];

    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(buf);
    Py_ssize_t n = PyBytes_GET_SIZE(buf);
    if (pos < 0 || pos > n) {
        PyErr_SetString(PyExc_ValueError, "scan_head() position out of range");
        return NULL;
    }
    Py_ssize_t end = find_head_end(data, pos, n);
    if (end < 0) {
        Py_RETURN_NONE;
    }

    /* method SP origin-form SP HTTP/1.x CRLF: none of these bytes is a CR, so
     * the first CRLF after pos ends the line. */
    Py_ssize_t p = pos;
    while (classes[data[p]] & C_TCHAR) {
        p++;
    }
    Py_ssize_t method_end = p;
    if (method_end == pos || data[p] != ' ') {
        Py_RETURN_FALSE;
    }
    Py_ssize_t target_start = ++p;
    while (classes[data[p]] & C_TARGET) {
        p++;
    }
    Py_ssize_t target_end = p;
    if (target_end == target_start || data[p] != ' ' || data[target_start] != '/') {
        Py_RETURN_FALSE;
    }
    p++;
    /* The head ends in CRLF CRLF, so "HTTP/1.x" CR LF fits before data+n or
     * the comparison fails on a byte that is there. */
    if (n - p < 10 || memcmp(data + p, "HTTP/1.", 7) != 0 || (data[p + 7] != '0' && data[p + 7] != '1')
        || data[p + 8] != '\r' || data[p + 9] != '\n') {
        Py_RETURN_FALSE;
    }
    long minor = data[p + 7] - '0';
    Py_ssize_t line_end = p + 8;
    if (line_end - pos > max_request_line) {
        Py_RETURN_FALSE;
    }
    if (method_end - pos == 7 && memcmp(data + pos, "CONNECT", 7) == 0) {
        Py_RETURN_FALSE;
    }

    Py_ssize_t block_start = line_end + 2;
    Py_ssize_t block_len = end + 2 - block_start;
    PyObject *block;
    PyObject *found;
    if (PyBytes_CheckExact(last) && PyBytes_GET_SIZE(last) == block_len
        && memcmp(PyBytes_AS_STRING(last), data + block_start, (size_t)block_len) == 0) {
        /* The parser's previous block, so valid under these limits already. */
        Py_INCREF(last);
        block = last;
        Py_INCREF(Py_None);
        found = Py_None;
    }
    else {
        Py_ssize_t lines[MAX_FRAMING_LINES][2];
        int n_lines;
        if (block_len > max_block
            || !valid_block(data + block_start, block_len, max_field, max_fields, lines, &n_lines)) {
            Py_RETURN_FALSE;
        }
        block = PyBytes_FromStringAndSize((const char *)data + block_start, block_len);
        if (block == NULL) {
            return NULL;
        }
        found = framing_fields(data + block_start, lines, n_lines);
        if (found == NULL) {
            Py_DECREF(block);
            return NULL;
        }
    }

    PyObject *method = method_object(data + pos, method_end - pos);
    PyObject *target = PyUnicode_DecodeASCII((const char *)data + target_start, target_end - target_start, NULL);
    PyObject *minor_obj = PyLong_FromLong(minor);
    PyObject *end_obj = PyLong_FromSsize_t(end + 4);
    PyObject *result = NULL;
    if (method != NULL && target != NULL && minor_obj != NULL && end_obj != NULL) {
        result = PyTuple_Pack(6, method, target, minor_obj, block, found, end_obj);
    }
    Py_XDECREF(method);
    Py_XDECREF(target);
    Py_XDECREF(minor_obj);
    Py_XDECREF(end_obj);
    Py_DECREF(block);
    Py_DECREF(found);
    return result;
}

/* The end of a valid chunk-size line at p (RFC 9112 7.1, as the parser's
 * _CHUNK_LINE: 1-16 hex digits, then extensions `;name[=token|quoted]` with no
 * whitespace), that is the position of its CRLF, with its size in *size; or
 * NULL if the line is not that (or has no CRLF before stop). */
static const unsigned char *
chunk_line(const unsigned char *p, const unsigned char *stop, unsigned long long *size)
{
    const unsigned char *start = p;
    unsigned long long n = 0;
    while (p < stop && (classes[*p] & C_HEX)) {
        unsigned char c = *p;
        n = n * 16 + (unsigned long long)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
        p++;
    }
    if (p == start || p - start > 16) {
        return NULL;
    }
    while (p < stop && *p == ';') {
        const unsigned char *name = ++p;
        while (p < stop && (classes[*p] & C_TCHAR)) {
            p++;
        }
        if (p == name) {
            return NULL;
        }
        if (p < stop && *p == '=') {
            p++;
            if (p < stop && *p == '"') {
                p++;
                for (;;) {
                    if (p >= stop) {
                        return NULL;
                    }
                    unsigned char c = *p;
                    if (c == '"') {
                        p++;
                        break;
                    }
                    if (c == '\\') {
                        /* quoted-pair: HTAB, SP, VCHAR or obs-text */
                        if (p + 1 >= stop || !(p[1] == '\t' || (p[1] >= 0x20 && p[1] != 0x7f))) {
                            return NULL;
                        }
                        p += 2;
                        continue;
                    }
                    if (!(c == '\t' || (c >= 0x20 && c != 0x7f))) {
                        return NULL;
                    }
                    p++;
                }
            }
            else {
                const unsigned char *token = p;
                while (p < stop && (classes[*p] & C_TCHAR)) {
                    p++;
                }
                if (p == token) {
                    return NULL;
                }
            }
        }
    }
    if (stop - p < 2 || p[0] != '\r' || p[1] != '\n') {
        return NULL;
    }
    *size = n;
    return p;
}

PyDoc_STRVAR(scan_chunks_doc,
"scan_chunks(buf, pos, budget, max_chunk_line)\n"
"\n"
"The complete chunks of a chunked body at buf[pos:], for a parser waiting for\n"
"a chunk-size line: (data, end, ended). data joins the data of the valid,\n"
"non-empty chunks there that are whole in buf (size line, data and CRLF) and\n"
"fit in `budget` bytes together; end is where they stop; ended is True when\n"
"a last-chunk without trailers (\"0\" [extensions] CRLF CRLF) follows them and\n"
"is consumed too. It stops, leaving the rest to the parser's Python code, at\n"
"anything else: an incomplete chunk, a line it does not accept, trailers, a\n"
"chunk past the budget or a line longer than max_chunk_line.");

static PyObject *
scan_chunks(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "scan_chunks() takes exactly 4 arguments");
        return NULL;
    }
    PyObject *buf = args[0];
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t budget, max_line;
    if (as_size(args[2], &budget) < 0 || as_size(args[3], &max_line) < 0) {
        return NULL;
    }
    if (!PyBytes_CheckExact(buf)) {
        /* a bytes subclass or another buffer: nothing taken, Python's to judge */
        return Py_BuildValue("(y#nO)", "", (Py_ssize_t)0, pos, Py_False);
    }
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(buf);
    Py_ssize_t n = PyBytes_GET_SIZE(buf);
    if (pos < 0 || pos > n) {
        PyErr_SetString(PyExc_ValueError, "scan_chunks() position out of range");
        return NULL;
    }
    if (budget < 0) {
        budget = 0;
    }
    const unsigned char *stop = data + n;

    /* Pass 1: how far the acceptable chunks go, and their data's total size. */
    const unsigned char *p = data + pos;
    Py_ssize_t total = 0;
    int ended = 0;
    for (;;) {
        unsigned long long size;
        const unsigned char *crlf = chunk_line(p, stop, &size);
        if (crlf == NULL || crlf - p > max_line) {
            break;
        }
        if (size == 0) {
            if (stop - crlf >= 4 && crlf[2] == '\r' && crlf[3] == '\n') {
                ended = 1;
                p = crlf + 4;
            }
            break;
        }
        if (size > (unsigned long long)(budget - total)
            || (unsigned long long)(stop - crlf - 2) < size + 2) {
            break;
        }
        const unsigned char *after = crlf + 2 + size;
        if (after[0] != '\r' || after[1] != '\n') {
            break;
        }
        total += (Py_ssize_t)size;
        p = after + 2;
    }
    Py_ssize_t end = p - data;

    /* Pass 2: copy the data out. Every line was checked in pass 1. */
    PyObject *joined = PyBytes_FromStringAndSize(NULL, total);
    if (joined == NULL) {
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(joined);
    const unsigned char *q = data + pos;
    Py_ssize_t copied = 0;
    while (copied < total) {
        unsigned long long size;
        const unsigned char *crlf = chunk_line(q, stop, &size);
        memcpy(out + copied, crlf + 2, (size_t)size);
        copied += (Py_ssize_t)size;
        q = crlf + 2 + size + 2;
    }
    PyObject *end_obj = PyLong_FromSsize_t(end);
    if (end_obj == NULL) {
        Py_DECREF(joined);
        return NULL;
    }
    PyObject *result = PyTuple_Pack(3, joined, end_obj, ended ? Py_True : Py_False);
    Py_DECREF(joined);
    Py_DECREF(end_obj);
    return result;
}

static PyMethodDef methods[] = {
    {"scan_head", (PyCFunction)(void (*)(void))scan_head, METH_FASTCALL, scan_head_doc},
    {"scan_chunks", (PyCFunction)(void (*)(void))scan_chunks, METH_FASTCALL, scan_chunks_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "treadle.http._speedups",
    "An optional C fast path for treadle.http.parser: it accepts what the Python\n"
    "parser accepts, with the same result, or defers to it; it never rejects.",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    init_classes();
    for (size_t i = 0; i < N_COMMON_METHODS; i++) {
        if (common_method_objects[i] == NULL) {
            common_method_objects[i] = PyUnicode_InternFromString(common_methods[i]);
            if (common_method_objects[i] == NULL) {
                return NULL;
            }
        }
    }
    return PyModule_Create(&module_def);
}
