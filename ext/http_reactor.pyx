# cython: language_level=3
"""Compiled GET reactor engine and arena reader: twin of responder/http/_reactor_py.py
and of the reading half of responder/answers/arena.py.

Same contract, same bytes (the pure twin's docstring describes both, arena.py the
arena's layout and why a record read this way can be trusted). What the compiled one
saves per request: no Python object at all on a hit (the URL is hashed and compared
in place in the shared arena), no parser callbacks, no trio wait per connection (one
epoll_wait serves every ready one), and the answers are assembled in one reused
buffer and sent with one send().
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.time cimport time_t, tm
from libc.errno cimport EAGAIN, EINTR, errno
from libc.stdio cimport snprintf
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset


cdef extern from "sys/epoll.h" nogil:
    ctypedef union epoll_data_t:
        void* ptr
        int fd
        unsigned int u32
        unsigned long long u64

    struct epoll_event:
        unsigned int events
        epoll_data_t data

    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event* event)
    int epoll_wait(int epfd, epoll_event* events, int maxevents, int timeout)
    int EPOLL_CLOEXEC
    int EPOLL_CTL_ADD
    int EPOLL_CTL_DEL
    unsigned int EPOLLIN


cdef extern from "sys/socket.h" nogil:
    ssize_t recv(int fd, void* buf, size_t n, int flags)
    ssize_t send(int fd, const void* buf, size_t n, int flags)
    int accept4(int fd, void* addr, void* addrlen, int flags)
    int setsockopt(int fd, int level, int name, const void* value, unsigned int length)
    int MSG_NOSIGNAL
    int MSG_DONTWAIT
    int SOCK_NONBLOCK
    int SOCK_CLOEXEC


cdef extern from "netinet/in.h" nogil:
    int IPPROTO_TCP


cdef extern from "netinet/tcp.h" nogil:
    int TCP_NODELAY


cdef extern from "unistd.h" nogil:
    int close(int fd)


cdef extern from "time.h" nogil:
    tm* gmtime_r(const time_t* t, tm* out)


cdef extern from *:
    """
    #include <string.h>
    /* The arena is written by other processes: the write-position loads are acquire
       loads, so the record bytes copied before them are not read after them. */
    static inline unsigned long long revocd_acquire_u64(const unsigned char* p) {
        return __atomic_load_n((const unsigned long long*)p, __ATOMIC_ACQUIRE);
    }
    static inline unsigned int revocd_u32(const unsigned char* p) {
        return __atomic_load_n((const unsigned int*)p, __ATOMIC_RELAXED);
    }
    static inline unsigned long long revocd_u64(const unsigned char* p) {
        return __atomic_load_n((const unsigned long long*)p, __ATOMIC_RELAXED);
    }
    static inline double revocd_f64(const unsigned char* p) {
        double d; memcpy(&d, p, 8); return d;
    }
    static inline unsigned short revocd_u16(const unsigned char* p) {
        unsigned short v; memcpy(&v, p, 2); return v;
    }
    """
    unsigned long long revocd_acquire_u64(const unsigned char* p) nogil
    unsigned int revocd_u32(const unsigned char* p) nogil
    unsigned long long revocd_u64(const unsigned char* p) nogil
    double revocd_f64(const unsigned char* p) nogil
    unsigned short revocd_u16(const unsigned char* p) nogil


KEEP, KEEP_10, CLOSE = 0, 1, 2
READ_SIZE = 65536
MAX_EVENTS = 256
POST_BUDGET = 24
cdef enum:
    C_READ_SIZE = 65536
    C_MAX_EVENTS = 256
    C_POST_BUDGET = 24  # the twin's POST_BUDGET
    # The longest tail: two 64-bit numbers in TAIL_FORMAT.
    TAIL_MAX = 192
    # The fixed part of a rendered head: status line, Date, the head lines, two dates,
    # the ETag (with room to spare).
    HEAD_MAX = 23 + 2 + 64 + 2 * 29 + 11 + 8 + 64 + 4 + 32
    # arena.py's layout
    HEADER_SIZE = 4096
    PROBES = 8
    HEAD_AT = 128
    RESERVED_AT = 136
    GENERATION_AT = 144
    BEAT_AT = 152
    RECORD_SIZE = 68

cdef const char* STATUS_LINE = b"HTTP/1.1 200 OK\r\nDate: "
cdef const char* HEAD_LINES = b"\r\nContent-Type: application/ocsp-response\r\nLast-Modified: "
cdef const char* HEX = b"0123456789abcdef"
cdef const char* DAYS[7]
cdef const char* MONTHS[12]
DAYS[:] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"]
MONTHS[:] = [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct",
             b"Nov", b"Dec"]
cdef const char* TAIL_FORMAT = (
    b"Cache-Control: max-age=%lld, public, no-transform, must-revalidate\r\n"
    b"Content-Length: %zd\r\n%s\r\n"
)
# The twin's _CONNECTION, by KEEP / KEEP_10 / CLOSE
cdef const char* CONNECTION[3]
CONNECTION[:] = [b"", b"Connection: keep-alive\r\n", b"Connection: close\r\n"]

# Character classes, as in the twin: token, target, field value.
cdef unsigned char TCHAR[256]
cdef unsigned char TARGET[256]
cdef unsigned char VALUE[256]


cdef void _fill_class(unsigned char* table, bytes members):
    cdef Py_ssize_t i
    memset(table, 0, 256)
    for i in range(len(members)):
        table[<unsigned char>members[i]] = 1


_fill_class(TCHAR, b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_fill_class(
    TARGET, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?%"
)
_fill_class(VALUE, bytes(range(0x20, 0x7F)) + b"\t")

# Fields that send a request to the full path (see the twin's _HANDOFF_FIELDS).
cdef tuple HANDOFF_FIELDS = (
    b"content-length",
    b"transfer-encoding",
    b"upgrade",
    b"expect",
    b"te",
    b"trailer",
    b"if-none-match",
    b"if-modified-since",
    b"if-match",
    b"if-unmodified-since",
    b"if-range",
    b"range",
)


cdef inline unsigned char _lower(unsigned char c) noexcept nogil:
    return c + 32 if 65 <= c <= 90 else c


cdef bint _same(const unsigned char* p, Py_ssize_t n, bytes lowered) noexcept:
    """Whether p[:n], ASCII case folded, equals `lowered`."""
    cdef const unsigned char* q = <const unsigned char*>PyBytes_AS_STRING(lowered)
    cdef Py_ssize_t i
    if n != PyBytes_GET_SIZE(lowered):
        return False
    for i in range(n):
        if _lower(p[i]) != q[i]:
            return False
    return True


cdef bint _handoff_field(const unsigned char* name, Py_ssize_t n) noexcept:
    cdef bytes field
    for field in HANDOFF_FIELDS:
        if _same(name, n, field):
            return True
    return False


cdef bint _post_target(const unsigned char* p, Py_ssize_t n, tuple targets) noexcept:
    cdef bytes target
    for target in targets:
        if PyBytes_GET_SIZE(target) == n and memcmp(p, PyBytes_AS_STRING(target), n) == 0:
            return True
    return False


cdef Py_ssize_t _length(const unsigned char* p, Py_ssize_t n, Py_ssize_t max_body_bytes) noexcept:
    """The twin's _length: 1 to max_body_bytes, plain digits, no leading zero, or -1."""
    cdef Py_ssize_t i, value = 0
    if n == 0 or n > 9 or p[0] == 48:
        return -1
    for i in range(n):
        if p[i] < 48 or p[i] > 57:
            return -1
        value = value * 10 + (p[i] - 48)
    return value if value <= max_body_bytes else -1


cdef Py_ssize_t _parse(
    const unsigned char* b,
    Py_ssize_t size,
    Py_ssize_t max_header_bytes,
    Py_ssize_t max_pipelined,
    Py_ssize_t max_body_bytes,
    tuple post_targets,
    Py_ssize_t* starts,
    Py_ssize_t* lengths,
    char* kinds,
    char* modes,
) noexcept:
    """How many plain GETs and POSTs `b` is made of (the GETs' targets and the POSTs'
    bodies into starts/lengths, 1 in kinds for a POST, KEEP/KEEP_10/CLOSE in modes),
    or -1 when it is anything else. Same decision as the twin's parse()."""
    cdef Py_ssize_t pos = 0, p, t0, tlen, n0, nlen, v0, vlen, counted, count = 0, length
    cdef bint post, http10
    cdef int connection  # -1 none, 0 keep-alive, 1 close
    while pos < size:
        if count >= max_pipelined or (count > 0 and modes[count - 1] == 2):
            return -1
        if size - pos >= 6 and memcmp(b + pos, b"POST /", 6) == 0:
            post = True
            p = pos + 5
        elif size - pos >= 5 and memcmp(b + pos, b"GET /", 5) == 0:
            post = False
            p = pos + 4
        else:
            return -1
        t0 = p
        while p < size and TARGET[b[p]]:
            p += 1
        tlen = p - t0
        if size - p < 11:
            return -1
        if memcmp(b + p, b" HTTP/1.1\r\n", 11) == 0:
            http10 = False
        elif memcmp(b + p, b" HTTP/1.0\r\n", 11) == 0:
            http10 = True
        else:
            return -1
        if post and not _post_target(b + t0, tlen, post_targets):
            return -1
        p += 11
        counted = tlen
        length = -1
        connection = -1
        while True:
            if size - p >= 2 and b[p] == 13 and b[p + 1] == 10:
                p += 2
                break  # the empty line: end of this request's head
            n0 = p
            while p < size and TCHAR[b[p]]:
                p += 1
            nlen = p - n0
            if nlen == 0 or p >= size or b[p] != 58:  # ':'
                return -1
            p += 1
            while p < size and (b[p] == 32 or b[p] == 9):
                p += 1
            v0 = p
            while p < size and VALUE[b[p]]:
                p += 1
            vlen = p - v0
            if size - p < 2 or b[p] != 13 or b[p + 1] != 10:
                return -1
            if vlen > 0 and (b[p - 1] == 32 or b[p - 1] == 9):
                return -1  # trailing whitespace: the full path decides
            p += 2
            if post and _same(b + n0, nlen, b"content-length"):
                if length >= 0:
                    return -1  # two of them: request smuggling's favourite
                length = _length(b + v0, vlen, max_body_bytes)
                if length < 0:
                    return -1
            elif _handoff_field(b + n0, nlen):
                return -1
            if _same(b + n0, nlen, b"connection"):
                if connection >= 0:
                    return -1  # two of them: the full path decides
                if _same(b + v0, vlen, b"keep-alive"):
                    connection = 0
                elif _same(b + v0, vlen, b"close"):
                    connection = 1
                else:
                    return -1  # upgrade, or a list
            counted += nlen + vlen + 4
        if counted > max_header_bytes:
            return -1
        if http10:
            modes[count] = 1 if connection == 0 else 2
        else:
            modes[count] = 2 if connection == 1 else 0
        if post:
            if length < 0 or p + length > size:
                return -1  # no length, or the body is not all here yet
            starts[count] = p
            lengths[count] = length
            kinds[count] = 1
            p += length
        else:
            starts[count] = t0
            lengths[count] = tlen
            kinds[count] = 0
        count += 1
        pos = p
    return count if count > 0 else -1


def parse(
    bytes buf,
    Py_ssize_t max_header_bytes,
    Py_ssize_t max_pipelined,
    Py_ssize_t max_body_bytes=0,
    tuple post_targets=(),
):
    """The twin's parse(): (is a POST, its target or body) per request, or None."""
    cdef Py_ssize_t n = max(max_pipelined, 1)
    cdef Py_ssize_t* starts = <Py_ssize_t*>malloc(n * sizeof(Py_ssize_t))
    cdef Py_ssize_t* lengths = <Py_ssize_t*>malloc(n * sizeof(Py_ssize_t))
    cdef char* kinds = <char*>malloc(n)
    cdef char* modes = <char*>malloc(n)
    cdef const unsigned char* b = <const unsigned char*>PyBytes_AS_STRING(buf)
    cdef Py_ssize_t count, i
    if starts == NULL or lengths == NULL or kinds == NULL or modes == NULL:
        free(starts)
        free(lengths)
        free(kinds)
        free(modes)
        raise MemoryError()
    try:
        count = _parse(b, len(buf), max_header_bytes, max_pipelined, max_body_bytes,
                       post_targets, starts, lengths, kinds, modes)
        if count < 0:
            return None
        return [
            (bool(kinds[i]), buf[starts[i] : starts[i] + lengths[i]], <int>modes[i])
            for i in range(count)
        ]
    finally:
        free(starts)
        free(lengths)
        free(kinds)
        free(modes)



from responder.answers.arena import MAGIC, OWNER_STALE, Record

cdef double OWNER_STALE_C = OWNER_STALE

cdef unsigned long long FNV_OFFSET = 0xCBF29CE484222325ULL
cdef unsigned long long FNV_PRIME = 0x100000001B3ULL


cdef inline unsigned long long _url_hash(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    """arena.url_hash: FNV-1a 64, never 0."""
    cdef unsigned long long h = FNV_OFFSET
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ p[i]) * FNV_PRIME
    return h if h else 1


def url_hash(bytes url):
    return _url_hash(<const unsigned char*>PyBytes_AS_STRING(url), len(url))


cdef Py_ssize_t _http_date(char* out, long long seconds) noexcept nogil:
    """protocol.http_date: IMF-fixdate, 29 bytes."""
    cdef time_t t = <time_t>seconds
    cdef tm parts
    gmtime_r(&t, &parts)
    return snprintf(out, 30, b"%s, %02d %s %04d %02d:%02d:%02d GMT", DAYS[parts.tm_wday],
                    parts.tm_mday, MONTHS[parts.tm_mon], parts.tm_year + 1900, parts.tm_hour,
                    parts.tm_min, parts.tm_sec)


cdef class Reader:
    """The arena's reading half, in place in the shared mapping (Arena.lookup's twin)."""

    cdef object arena
    cdef Py_buffer view
    cdef bint has_view
    cdef const unsigned char* base
    cdef unsigned long long total
    cdef unsigned long long ring_offset
    cdef unsigned long long ring_size
    cdef unsigned long long index_offset
    cdef unsigned long long counters_offset
    cdef unsigned long long slots
    cdef unsigned int counters

    def __init__(self, arena):
        layout = arena.layout
        PyObject_GetBuffer(arena.mm, &self.view, PyBUF_SIMPLE)
        self.has_view = True
        self.arena = arena
        self.base = <const unsigned char*>self.view.buf
        magic = MAGIC
        if memcmp(self.base, <const char*>magic, 8) != 0:
            raise ValueError("not a revocd answer arena")
        self.total = layout.total
        if <unsigned long long>self.view.len < self.total:
            raise ValueError("the arena mapping is shorter than its layout")
        self.ring_offset = layout.ring_offset
        self.ring_size = layout.ring_size
        self.index_offset = layout.index_offset
        self.counters_offset = layout.counters_offset
        self.slots = layout.index_slots
        self.counters = layout.counters

    def __dealloc__(self):
        if self.has_view:
            PyBuffer_Release(&self.view)

    def release(self):
        """Let go of the mapping (so the arena can be closed)."""
        if self.has_view:
            PyBuffer_Release(&self.view)
            self.has_view = False
            self.base = NULL

    cdef inline bint _owned(self, long long now) noexcept nogil:
        return <double>now - revocd_f64(self.base + BEAT_AT) < OWNER_STALE_C

    cdef const unsigned char* _find(
        self,
        const unsigned char* url,
        Py_ssize_t n,
        long long now,
        bint stale_ok,
        unsigned long long* found_pos,
    ) noexcept nogil:
        """The record for url (its header), or NULL; its position into found_pos. The
        caller copies what it needs, then asks _intact."""
        cdef unsigned long long h = _url_hash(url, n)
        cdef unsigned int generation = revocd_u32(self.base + GENERATION_AT)
        cdef unsigned long long head, pos, stored, at, length, limit
        cdef const unsigned char* slot
        cdef const unsigned char* rec
        cdef unsigned int url_len, der_len, index
        cdef int i
        for i in range(PROBES):
            slot = self.base + self.index_offset + ((h + i) % self.slots) * 16
            if revocd_u64(slot) != h:
                continue
            stored = revocd_u64(slot + 8)
            if stored == 0:
                continue
            pos = stored - 1
            head = revocd_acquire_u64(self.base + HEAD_AT)
            if pos + RECORD_SIZE > head or pos % 8:
                continue
            at = self.ring_offset + pos % self.ring_size
            if at + RECORD_SIZE > self.total:
                continue
            rec = self.base + at
            length = revocd_u32(rec)
            url_len = revocd_u16(rec + 4)
            der_len = revocd_u32(rec + 8)
            index = revocd_u32(rec + 16)
            if (
                length < RECORD_SIZE + url_len + der_len
                or pos + length > head
                or at + length > self.total
                or url_len != n
                or index >= self.counters
                or rec[6] > 2
            ):
                continue
            if memcmp(rec + RECORD_SIZE, url, n) != 0:
                continue
            if revocd_u32(rec + 12) != generation:
                continue
            if revocd_u32(self.base + self.counters_offset + 4 * index) != revocd_u32(rec + 20):
                continue
            limit = revocd_u32(rec + 28) if stale_ok else revocd_u32(rec + 32)
            if now >= <long long>limit:
                continue
            found_pos[0] = pos
            return rec
        return NULL

    cdef inline bint _intact(self, unsigned long long pos) noexcept nogil:
        """Whether no writer has reached the record at pos since it was found."""
        return revocd_acquire_u64(self.base + RESERVED_AT) <= pos + self.ring_size

    def lookup(self, bytes url, long long now, bint stale_ok=False):
        """Arena.lookup."""
        cdef unsigned long long pos
        cdef const unsigned char* rec
        cdef unsigned int url_len, der_len
        if self.base == NULL or not self._owned(now):
            return None
        rec = self._find(<const unsigned char*>PyBytes_AS_STRING(url), len(url), now, stale_ok,
                         &pos)
        if rec == NULL:
            return None
        url_len = revocd_u16(rec + 4)
        der_len = revocd_u32(rec + 8)
        der = PyBytes_FromStringAndSize(<const char*>rec + RECORD_SIZE + url_len, der_len)
        digest = PyBytes_FromStringAndSize(<const char*>rec + 36, 32)
        record = Record(der, revocd_u32(rec + 24), revocd_u32(rec + 28), revocd_u32(rec + 32),
                        rec[6], digest)
        if not self._intact(pos):
            return None
        return record


cdef class Engine:
    """The connections the reactor holds between requests, and their epoll set."""

    cdef public Reader reader
    cdef public object post
    cdef public Py_ssize_t max_body_bytes
    cdef public tuple post_targets
    cdef public int posts_left
    cdef public long long post_errors
    cdef char* kinds
    cdef char* modes
    cdef bint close_after  # the last _answer's requests asked to close
    cdef public long long cap
    cdef public Py_ssize_t max_header_bytes
    cdef public Py_ssize_t max_pipelined
    cdef int epfd
    cdef double* last  # per fd: when it was last active (monotonic)
    cdef char* owned  # per fd: 1 while the engine holds it
    cdef int fd_capacity
    cdef Py_ssize_t count
    cdef Py_ssize_t* starts
    cdef Py_ssize_t* lengths
    cdef unsigned long long* positions
    cdef unsigned char* rbuf
    cdef char* out
    cdef Py_ssize_t out_capacity
    cdef Py_ssize_t out_len
    cdef long long hits[4]
    cdef public long long closed
    cdef epoll_event events[C_MAX_EVENTS]

    def __cinit__(self):
        self.epfd = -1
        self.last = NULL
        self.owned = NULL
        self.starts = NULL
        self.lengths = NULL
        self.positions = NULL
        self.kinds = NULL
        self.modes = NULL
        self.rbuf = NULL
        self.out = NULL

    def __init__(
        self,
        Reader reader,
        object post,
        long long cap,
        Py_ssize_t max_header_bytes,
        Py_ssize_t max_pipelined,
        Py_ssize_t max_body_bytes=0,
        tuple post_targets=(),
    ):
        self._setup(reader, post, cap, max_header_bytes, max_pipelined, max_body_bytes,
                    post_targets, True)

    cdef int _setup(
        self,
        Reader reader,
        object post,
        long long cap,
        Py_ssize_t max_header_bytes,
        Py_ssize_t max_pipelined,
        Py_ssize_t max_body_bytes,
        tuple post_targets,
        bint sockets,
    ) except -1:
        """`sockets`: an epoll set and a read buffer (not needed by answer())."""
        cdef Py_ssize_t n = max(max_pipelined, 1)
        self.reader = reader
        self.post = post
        self.max_body_bytes = max_body_bytes
        self.post_targets = post_targets
        self.posts_left = C_POST_BUDGET
        self.post_errors = 0
        self.cap = cap
        self.max_header_bytes = max_header_bytes
        self.max_pipelined = max_pipelined
        if sockets:
            self.epfd = epoll_create1(EPOLL_CLOEXEC)
            if self.epfd < 0:
                raise OSError(errno, "epoll_create1 failed")
            self.rbuf = <unsigned char*>malloc(C_READ_SIZE)
            if self.rbuf == NULL:
                raise MemoryError()
        self.starts = <Py_ssize_t*>malloc(n * sizeof(Py_ssize_t))
        self.lengths = <Py_ssize_t*>malloc(n * sizeof(Py_ssize_t))
        self.positions = <unsigned long long*>malloc(n * sizeof(unsigned long long))
        self.kinds = <char*>malloc(n)
        self.modes = <char*>malloc(n)
        self.out_capacity = 16384
        self.out = <char*>malloc(self.out_capacity)
        if not (
            self.starts and self.lengths and self.positions and self.kinds and self.modes
            and self.out
        ):
            raise MemoryError()
        self.hits[0] = self.hits[1] = self.hits[2] = self.hits[3] = 0
        self.closed = 0
        return 0

    def __dealloc__(self):
        free(self.last)
        free(self.owned)
        free(self.starts)
        free(self.lengths)
        free(self.positions)
        free(self.kinds)
        free(self.modes)
        free(self.rbuf)
        free(self.out)

    def fileno(self):
        return self.epfd

    @property
    def connections(self):
        return self.count

    cdef int _grow_fds(self, int fd) except -1:
        cdef int capacity = self.fd_capacity or 1024
        cdef double* last
        cdef char* owned
        while capacity <= fd:
            capacity *= 2
        last = <double*>realloc(self.last, capacity * sizeof(double))
        if last == NULL:
            raise MemoryError()
        self.last = last
        owned = <char*>realloc(self.owned, capacity)
        if owned == NULL:
            raise MemoryError()
        memset(owned + self.fd_capacity, 0, capacity - self.fd_capacity)
        self.owned = owned
        self.fd_capacity = capacity
        return 0

    def add(self, int fd, double now):
        """Take a non-blocking connection between requests."""
        cdef epoll_event event
        if fd >= self.fd_capacity:
            self._grow_fds(fd)
        event.events = EPOLLIN
        event.data.u64 = 0
        event.data.fd = fd
        if epoll_ctl(self.epfd, EPOLL_CTL_ADD, fd, &event) < 0:
            raise OSError(errno, "epoll_ctl(ADD) failed")
        self.owned[fd] = 1
        self.last[fd] = now
        self.count += 1

    def accept(self, listener, int limit, double now):
        """Accept up to `limit` queued connections from `listener` straight into the
        epoll set (the twin's accept): (how many, 0 or the errno that stopped it;
        EAGAIN when the queue is empty)."""
        cdef int listen_fd = listener.fileno()
        cdef int fd, n = 0, one = 1
        while n < limit:
            fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)
            if fd < 0:
                return n, errno
            # RFC 9293 section 3.7.4: Nagle would hold back an answer written in pieces;
            # a Unix socket refuses the option, which is harmless.
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))
            try:
                self.add(fd, now)
            except OSError as exc:
                close(fd)  # the epoll set is full (max_user_watches) or memory is short
                return n, exc.errno
            n += 1
        return n, 0

    def take_counts(self):
        """GET hits per status, POSTs answered, connections closed and POST answers that
        failed since the last call (the twin's take_counts)."""
        counts = (self.hits[0], self.hits[1], self.hits[2], self.hits[3], self.closed,
                  self.post_errors)
        self.hits[0] = self.hits[1] = self.hits[2] = self.hits[3] = 0
        self.closed = 0
        self.post_errors = 0
        return counts

    cdef object _post(self, const unsigned char* body, Py_ssize_t n, int mode):
        self.posts_left -= 1
        try:
            answered = self.post(PyBytes_FromStringAndSize(<const char*>body, n), mode)
        except Exception:
            # The full path will meet the same fault and log it with its traceback.
            self.post_errors += 1
            return None
        return answered if type(answered) is bytes else None

    cdef void _close(self, int fd) noexcept:
        self.owned[fd] = 0
        self.count -= 1
        close(fd)  # also leaves the epoll set
        self.closed += 1

    cdef void _release(self, int fd) noexcept:
        epoll_ctl(self.epfd, EPOLL_CTL_DEL, fd, NULL)
        self.owned[fd] = 0
        self.count -= 1

    cdef int _reserve(self, Py_ssize_t extra) except -1:
        cdef Py_ssize_t want = self.out_len + extra
        cdef Py_ssize_t capacity = self.out_capacity
        cdef char* grown
        if want <= capacity:
            return 0
        while capacity < want:
            capacity *= 2
        grown = <char*>realloc(self.out, capacity)
        if grown == NULL:
            raise MemoryError()
        self.out = grown
        self.out_capacity = capacity
        return 0

    cdef int _render(self, const unsigned char* rec, const char* date, Py_ssize_t date_len,
                     long long now, int mode) except -1:
        """Append the 200 for the record (render() of the twin) to the output."""
        cdef unsigned int url_len = revocd_u16(rec + 4)
        cdef unsigned int der_len = revocd_u32(rec + 8)
        cdef long long age = <long long>revocd_u32(rec + 32) - now
        cdef char* o
        cdef int i
        if self.cap and age > self.cap:
            age = self.cap
        self._reserve(HEAD_MAX + date_len + TAIL_MAX + der_len)
        o = self.out + self.out_len
        memcpy(o, STATUS_LINE, 23)
        o += 23
        memcpy(o, date, date_len)
        o += date_len
        memcpy(o, HEAD_LINES, 58)
        o += 58
        o += _http_date(o, revocd_u32(rec + 24))
        memcpy(o, b"\r\nExpires: ", 11)
        o += 11
        o += _http_date(o, revocd_u32(rec + 28))
        memcpy(o, b"\r\nETag: \"", 9)
        o += 9
        for i in range(32):
            o[0] = HEX[rec[36 + i] >> 4]
            o[1] = HEX[rec[36 + i] & 15]
            o += 2
        memcpy(o, b"\"\r\n", 3)
        o += 3
        o += snprintf(o, TAIL_MAX, TAIL_FORMAT, age, <Py_ssize_t>der_len, CONNECTION[mode])
        memcpy(o, rec + RECORD_SIZE + url_len, der_len)
        o += der_len
        self.out_len = o - self.out
        return 0

    cdef bint _answer(self, const unsigned char* buf, Py_ssize_t size, long long now,
                      bytes date) except -1:
        """Render the answers to the requests in buf into the output; False for a
        hand-off (then no hit is counted)."""
        cdef Py_ssize_t count, i, n
        cdef long long hit[4]
        cdef const unsigned char* rec
        cdef const char* date_p = PyBytes_AS_STRING(date)
        cdef Py_ssize_t date_len = len(date)
        cdef Reader reader = self.reader
        cdef bytes answered
        cdef bint gets = False
        count = _parse(
            buf,
            size,
            self.max_header_bytes,
            self.max_pipelined,
            self.max_body_bytes,
            self.post_targets,
            self.starts,
            self.lengths,
            self.kinds,
            self.modes,
        )
        if count < 0:
            return False
        hit[0] = hit[1] = hit[2] = hit[3] = 0
        self.out_len = 0
        for i in range(count):
            if self.kinds[i]:
                if self.post is None:
                    return False
                answered = self._post(buf + self.starts[i], self.lengths[i], self.modes[i])
                if answered is None:
                    return False
                n = PyBytes_GET_SIZE(answered)
                self._reserve(n)
                memcpy(self.out + self.out_len, PyBytes_AS_STRING(answered), n)
                self.out_len += n
                hit[3] += 1
                continue
            if not gets:
                if reader.base == NULL or not reader._owned(now):
                    return False
                gets = True
            rec = reader._find(buf + self.starts[i], self.lengths[i], now, False,
                               &self.positions[i])
            if rec == NULL:
                return False
            self._render(rec, date_p, date_len, now, self.modes[i])
            hit[rec[6]] += 1
        # Every record copied: were any of them being overwritten meanwhile?
        for i in range(count):
            if not self.kinds[i] and not reader._intact(self.positions[i]):
                return False
        self.hits[0] += hit[0]
        self.hits[1] += hit[1]
        self.hits[2] += hit[2]
        self.hits[3] += hit[3]
        self.close_after = self.modes[count - 1] == 2
        return True

    def poll(self, double now, long long wall, bytes date):
        """Serve what is ready; the connections that need the full path."""
        cdef int ready, i, fd
        cdef ssize_t got, sent
        cdef bint ok
        cdef list handoffs = []
        self.posts_left = C_POST_BUDGET
        ready = epoll_wait(self.epfd, self.events, C_MAX_EVENTS, 0)
        if ready < 0:
            if errno == EINTR:
                return handoffs
            raise OSError(errno, "epoll_wait failed")
        for i in range(ready):
            if self.posts_left <= 0:
                break  # the rest stay ready: read at the next wake-up
            fd = self.events[i].data.fd
            if fd >= self.fd_capacity or not self.owned[fd]:
                continue
            got = recv(fd, self.rbuf, C_READ_SIZE, 0)
            if got < 0:
                if errno == EAGAIN or errno == EINTR:
                    continue
                self._close(fd)
                continue
            if got == 0:
                self._close(fd)  # the peer closed
                continue
            ok = got < C_READ_SIZE and self._answer(self.rbuf, got, wall, date)
            if not ok:
                self._release(fd)
                handoffs.append(
                    (fd, PyBytes_FromStringAndSize(<const char*>self.rbuf, got), b"", False)
                )
                continue
            sent = send(fd, self.out, self.out_len, MSG_NOSIGNAL | MSG_DONTWAIT)
            if sent < 0:
                if errno == EAGAIN or errno == EINTR:
                    sent = 0
                else:
                    self._close(fd)  # reset, or gone: nothing more to send it
                    continue
            if sent < self.out_len:
                # A client that does not read its answers: the trio server sends the
                # rest under its send deadline.
                self._release(fd)
                handoffs.append(
                    (
                        fd,
                        b"",
                        PyBytes_FromStringAndSize(self.out + sent, self.out_len - sent),
                        bool(self.close_after),
                    )
                )
                continue
            if self.close_after:
                self._close(fd)  # answered, and asked for no more
                continue
            self.last[fd] = now
        return handoffs

    def expire(self, double before):
        """Close connections idle since before `before`; how many."""
        cdef int fd
        cdef Py_ssize_t n = 0
        for fd in range(self.fd_capacity):
            if self.owned[fd] and self.last[fd] < before:
                self._close(fd)
                n += 1
        self.closed -= n  # counted by the caller as idle closes, not peer closes
        return n

    def evict(self):
        """Close the connection idle the longest (to make room at max_connections)."""
        cdef int fd, oldest = -1
        for fd in range(self.fd_capacity):
            if self.owned[fd] and (oldest < 0 or self.last[fd] < self.last[oldest]):
                oldest = fd
        if oldest < 0:
            return False
        self._close(oldest)
        self.closed -= 1
        return True

    def close(self):
        cdef int fd
        for fd in range(self.fd_capacity):
            if self.owned[fd]:
                self._close(fd)
        if self.epfd >= 0:
            close(self.epfd)
            self.epfd = -1


def answer(
    bytes buf,
    Reader reader,
    object post,
    long long now,
    bytes date,
    long long cap,
    Py_ssize_t max_header_bytes,
    Py_ssize_t max_pipelined,
    Py_ssize_t max_body_bytes,
    tuple post_targets,
    list hits,
):
    """The twin's answer(), through the engine's own parse, lookup and render."""
    cdef Engine engine = Engine.__new__(Engine)
    engine._setup(reader, post, cap, max_header_bytes, max_pipelined, max_body_bytes,
                  post_targets, False)
    if not engine._answer(<const unsigned char*>PyBytes_AS_STRING(buf), len(buf), now, date):
        return None
    for i in range(4):
        hits[i] += engine.hits[i]
    return PyBytes_FromStringAndSize(engine.out, engine.out_len), bool(engine.close_after)
