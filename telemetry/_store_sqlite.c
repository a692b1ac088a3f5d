/* The span store's direct use of SQLite: a batch of rows written, and root spans grouped
 * for ``chatops stats``, each with the GIL released once.
 *
 * Writing (``insert_rows``).
 * ``Connection.executemany`` releases and retakes the GIL around every row's step.
 * While the bot's event loop is busy, retaking it waits for the loop to let go (up
 * to the 5 ms switch interval), so under load the store's flush thread spent its
 * time waiting, rows piled up in memory, and every hand-off cost two context
 * switches. Here each value is read while the GIL is held, then every row is
 * bound and stepped with it released: the writer runs beside the event loop on
 * another core, and hands the GIL back once per batch.
 *
 * It uses the connection Python's sqlite3 module opened, inside the transaction
 * the caller began, through the same SQLite library (looked up through the
 * ``_sqlite3`` extension, so two SQLite copies never share one file); the
 * connection's handle is the first field of the module's connection object, as
 * in CPython 3.11 to 3.13. Wherever it cannot be sure to write what executemany
 * would (another Python, a value of a type not below or one with an adapter
 * registered, anything but one statement that writes and returns no rows, no
 * transaction open, a closed connection) it declines before writing, and where a
 * row fails it stops there: either way it answers False, and the caller rolls its
 * transaction back (it may hold the rows before the failed one) and runs
 * executemany on the same rows in a new one, which writes them or raises its own
 * error (``telemetry/store.py``, ``write_rows``). Two things executemany does are
 * not done here: the check that the connection is used from the thread that made
 * it, and an executemany override of a Connection subclass; the caller must own
 * the connection (no other thread may use or close it meanwhile).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;

#define SQLITE_OK 0
#define SQLITE_ERROR 1
#define SQLITE_ROW 100
#define SQLITE_DONE 101
#define SQLITE_INTEGER 1
#define SQLITE_TEXT 3
#define SQLITE_BLOB 4
#define SQLITE_NULL 5
#define SQLITE_STATIC ((void (*)(void *))0)

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000 && !defined(PYPY_VERSION) && \
    !defined(Py_GIL_DISABLED)
typedef struct {
    PyObject_HEAD
    sqlite3 *db; /* Modules/_sqlite/connection.h: pysqlite_Connection's first field */
} ConnectionHead;
#define KNOWN_LAYOUT 1
#else
#define KNOWN_LAYOUT 0
#endif

static struct {
    int (*prepare_v2)(sqlite3 *, const char *, int, sqlite3_stmt **, const char **);
    int (*bind_parameter_count)(sqlite3_stmt *);
    int (*column_count)(sqlite3_stmt *);
    int (*stmt_readonly)(sqlite3_stmt *);
    int (*bind_int64)(sqlite3_stmt *, int, long long);
    int (*bind_double)(sqlite3_stmt *, int, double);
    int (*bind_text)(sqlite3_stmt *, int, const char *, int, void (*)(void *));
    int (*bind_null)(sqlite3_stmt *, int);
    int (*step)(sqlite3_stmt *);
    int (*reset)(sqlite3_stmt *);
    int (*finalize)(sqlite3_stmt *);
    int (*get_autocommit)(sqlite3 *);
    const char *(*errmsg)(sqlite3 *);
    int (*libversion_number)(void);
    int (*column_type)(sqlite3_stmt *, int);
    long long (*column_int64)(sqlite3_stmt *, int);
    const unsigned char *(*column_text)(sqlite3_stmt *, int);
    int (*column_bytes)(sqlite3_stmt *, int);
    int (*extended_errcode)(sqlite3 *);
    const void *(*column_blob)(sqlite3_stmt *, int);
} api;

static int ready = 0;
static PyObject *connection_type = NULL, *operational_error = NULL;
/* sqlite3.adapters, the keys of the types bound here, and the None adapter store_sqlite.py
 * registers */
static PyObject *adapters = NULL, *base_keys = NULL, *none_key = NULL, *none_adapter = NULL;

enum { V_NULL, V_INT, V_FLOAT, V_TEXT };

typedef struct {
    int type;
    int len;
    union {
        long long i;
        double d;
        const char *s;
    } u;
} Value;

/* The C value of ``item``; 0 when only the sqlite3 module knows how to bind it. */
static int convert(PyObject *item, Value *v) {
    PyTypeObject *type = Py_TYPE(item);
    if (item == Py_None) {
        v->type = V_NULL;
    } else if (type == &PyUnicode_Type) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(item, &n); /* kept in the str, which we hold */
        if (s == NULL || n > INT_MAX) {
            PyErr_Clear();
            return 0;
        }
        v->type = V_TEXT;
        v->u.s = s;
        v->len = (int)n;
    } else if (type == &PyLong_Type || type == &PyBool_Type) {
        int overflow;
        long long i = PyLong_AsLongLongAndOverflow(item, &overflow);
        if (overflow || (i == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return 0;
        }
        v->type = V_INT;
        v->u.i = i;
    } else if (type == &PyFloat_Type) {
        v->type = V_FLOAT;
        v->u.d = PyFloat_AS_DOUBLE(item);
    } else {
        return 0;
    }
    return 1;
}

static int bind(sqlite3_stmt *stmt, const Value *row, int width) {
    for (int c = 0; c < width; c++) {
        const Value *v = &row[c];
        int rc;
        switch (v->type) {
        case V_INT: rc = api.bind_int64(stmt, c + 1, v->u.i); break;
        case V_FLOAT: rc = api.bind_double(stmt, c + 1, v->u.d); break;
        case V_TEXT: rc = api.bind_text(stmt, c + 1, v->u.s, v->len, SQLITE_STATIC); break;
        default: rc = api.bind_null(stmt, c + 1); break;
        }
        if (rc != SQLITE_OK) return rc;
    }
    return SQLITE_OK;
}

/* Write every row with the GIL released; stop at the first that fails. No savepoint: one
 * costs a copy of every page the batch changes (SQLite's sub-journal, in a temporary
 * file), about a fifth of the write; the caller rolls back instead. */
static int write_all(sqlite3_stmt *stmt, const Value *values, Py_ssize_t rows, int width) {
    int rc = SQLITE_OK;
    for (Py_ssize_t r = 0; rc == SQLITE_OK && r < rows; r++) {
        rc = bind(stmt, values + r * width, width);
        if (rc == SQLITE_OK) {
            rc = api.step(stmt);
            rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        }
        api.reset(stmt);
    }
    return rc;
}

/* Whether the sqlite3 module would adapt a value of these types (an adapter registered). */
static int adapted(void) {
    PyObject *found;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(base_keys); i++) {
        found = PyDict_GetItemWithError(adapters, PyTuple_GET_ITEM(base_keys, i));
        if (found != NULL || PyErr_Occurred()) goto yes;
    }
    found = PyDict_GetItemWithError(adapters, none_key); /* absent or ours: NULL either way */
    if (PyErr_Occurred()) goto yes;
    return found != NULL && found != none_adapter;
yes:
    PyErr_Clear();
    return 1;
}

/* Prepared only if it is one statement returning ``columns`` columns, read-only or not as
 * asked, that takes ``width`` values; NULL otherwise (the sqlite3 module then prepares it
 * and says what is wrong, or does what is unusual). */
static sqlite3_stmt *prepare(sqlite3 *db, const char *sql, Py_ssize_t len, int columns,
                             int readonly, int width) {
    sqlite3_stmt *stmt = NULL;
    const char *tail = NULL;
    if ((Py_ssize_t)strlen(sql) != len) return NULL; /* a NUL: the sqlite3 module refuses it */
    if (api.prepare_v2(db, sql, (int)len, &stmt, &tail) != SQLITE_OK || stmt == NULL) {
        if (stmt != NULL) api.finalize(stmt);
        return NULL;
    }
    while (tail != NULL && *tail != '\0' && strchr(" \t\r\n;", *tail) != NULL) tail++;
    if ((tail != NULL && *tail != '\0') || api.column_count(stmt) != columns ||
        !api.stmt_readonly(stmt) != !readonly || api.bind_parameter_count(stmt) != width) {
        api.finalize(stmt);
        return NULL;
    }
    return stmt;
}

static PyObject *insert_rows(PyObject *module, PyObject *args) {
    PyObject *conn, *sql, *rows_arg;
    (void)module;
    if (!PyArg_ParseTuple(args, "OUO:insert_rows", &conn, &sql, &rows_arg)) return NULL;
#if KNOWN_LAYOUT
    /* Only what can be read twice (executemany gets the same rows if this declines). */
    if (!ready || !(PyList_CheckExact(rows_arg) || PyTuple_CheckExact(rows_arg)) ||
        !PyObject_TypeCheck(conn, (PyTypeObject *)connection_type) || adapted())
        Py_RETURN_FALSE;
    sqlite3 *db = ((ConnectionHead *)conn)->db;
    /* Closed, or no transaction to write in (executemany would begin or commit per row). */
    if (db == NULL || api.get_autocommit(db)) Py_RETURN_FALSE;
    Py_ssize_t sql_len;
    const char *sql_text = PyUnicode_AsUTF8AndSize(sql, &sql_len);
    if (sql_text == NULL) return NULL;
    if (sql_len > INT_MAX) Py_RETURN_FALSE;
    /* A tuple of the rows holds every value alive while the GIL is released. */
    PyObject *rows = PySequence_Tuple(rows_arg);
    if (rows == NULL) return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(rows);
    PyObject *first = count ? PyTuple_GET_ITEM(rows, 0) : NULL;
    Py_ssize_t width = first != NULL && PyTuple_CheckExact(first) ? PyTuple_GET_SIZE(first) : 0;
    Value *values = NULL;
    if (width > 0 && width < 1000 && count <= PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(Value) / width)
        values = PyMem_Malloc(count * width * sizeof(Value));
    int ok = values != NULL;
    for (Py_ssize_t r = 0; ok && r < count; r++) {
        PyObject *row = PyTuple_GET_ITEM(rows, r);
        ok = PyTuple_CheckExact(row) && PyTuple_GET_SIZE(row) == width;
        for (Py_ssize_t c = 0; ok && c < width; c++)
            ok = convert(PyTuple_GET_ITEM(row, c), &values[r * width + c]);
    }
    /* One statement that writes and returns no rows. */
    sqlite3_stmt *stmt = ok ? prepare(db, sql_text, sql_len, 0, 0, (int)width) : NULL;
    if (stmt == NULL) { /* executemany says what is wrong, or does what is unusual */
        PyMem_Free(values);
        Py_DECREF(rows);
        Py_RETURN_FALSE;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = write_all(stmt, values, count, (int)width);
    api.finalize(stmt);
    Py_END_ALLOW_THREADS
    PyMem_Free(values);
    Py_DECREF(rows);
    /* A failed row: the rows before it stay in the transaction, which the caller rolls
     * back before executemany raises its own error (or, the failure passed, writes). */
    return PyBool_FromLong(rc == SQLITE_OK);
#else
    Py_RETURN_FALSE;
#endif
}

/* ---- Grouping root spans (``group_durations``) ----
 *
 * ``chatops stats --by KEY`` needs, per value of KEY, the count, the errors, the
 * longest duration and nearest-rank percentiles. With an index in (KEY, duration)
 * order for each KEY, SQLite answers that by OFFSET, but keeping such indexes costs
 * the bot a random page of each per root span it writes. So the store keeps its root
 * spans in time order only, and this reads the rows of one query (group, duration,
 * is_error) with the GIL released, groups them in a hash table and sorts each group's
 * durations: what a pass in Python does per row (a tuple, a dict lookup, an append),
 * done in C. Wherever it cannot return exactly what that Python pass would (a value
 * not TEXT or NULL, a duration not an INTEGER, text that is not UTF-8, parameters it
 * cannot bind, a statement that is not one read of three columns, a statement SQLite
 * cannot prepare) it answers None and the caller runs the Python pass, which answers
 * or raises its own error. An error while reading rows (a lock not given up in time,
 * an interrupt, an I/O error) is raised as the sqlite3 module raises it
 * (OperationalError, with ``sqlite_errorcode``; MemoryError), not run again.
 * ``telemetry/store_sqlite.py`` declines what depends on the connection's Python
 * settings (a row factory, converters, the thread check) before calling this. */

typedef struct {
    size_t key;             /* offset of the value's bytes in the arena */
    int len;                /* -1: the NULL group */
    unsigned long long hash;
    long long count, errors, longest, first; /* first: where its durations start, sorted */
} Group;

typedef struct {
    Group *groups; /* in first-seen order, which is the order the Python pass reports */
    size_t used, cap;
    size_t *slots; /* open addressing: index + 1 into groups, 0 empty */
    size_t mask;
    char *arena;
    size_t arena_used, arena_cap;
    int *row_group; /* per row read: its group */
    long long *row_duration;
    size_t rows, rows_cap;
} Scan;

enum { SCAN_DONE = 0, SCAN_DECLINE = 1, SCAN_NOMEM = 2, SCAN_ERROR = 3 };

static unsigned long long text_hash(const char *s, int len) {
    unsigned long long h = 1469598103934665603ULL; /* FNV-1a */
    for (int i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static int grow_slots(Scan *scan) {
    size_t size = scan->mask ? (scan->mask + 1) * 2 : 256;
    size_t *slots = calloc(size, sizeof *slots);
    if (slots == NULL) return 0;
    for (size_t g = 0; g < scan->used; g++) {
        size_t i = scan->groups[g].hash & (size - 1);
        while (slots[i]) i = (i + 1) & (size - 1);
        slots[i] = g + 1;
    }
    free(scan->slots);
    scan->slots = slots;
    scan->mask = size - 1;
    return 1;
}

/* The group of a value (len -1: NULL), added if new; -1 when out of memory. */
static long long group_of(Scan *scan, const char *text, int len) {
    unsigned long long h = len < 0 ? 0 : text_hash(text, len);
    if (scan->mask == 0 && !grow_slots(scan)) return -1;
    size_t i = h & scan->mask;
    for (size_t found; (found = scan->slots[i]) != 0; i = (i + 1) & scan->mask) {
        Group *g = &scan->groups[found - 1];
        if (g->hash == h && g->len == len &&
            (len <= 0 || memcmp(scan->arena + g->key, text, (size_t)len) == 0))
            return (long long)(found - 1);
    }
    if (scan->used == scan->cap) {
        size_t cap = scan->cap ? scan->cap * 2 : 64;
        Group *groups = realloc(scan->groups, cap * sizeof *groups);
        if (groups == NULL) return -1;
        scan->groups = groups;
        scan->cap = cap;
    }
    if (len > 0 && scan->arena_used + (size_t)len > scan->arena_cap) {
        size_t cap = scan->arena_cap ? scan->arena_cap : 4096;
        while (cap < scan->arena_used + (size_t)len) cap *= 2;
        char *arena = realloc(scan->arena, cap);
        if (arena == NULL) return -1;
        scan->arena = arena;
        scan->arena_cap = cap;
    }
    Group *g = &scan->groups[scan->used];
    *g = (Group){.key = scan->arena_used, .len = len, .hash = h};
    if (len > 0) memcpy(scan->arena + scan->arena_used, text, (size_t)len);
    scan->arena_used += len > 0 ? (size_t)len : 0;
    scan->slots[i] = ++scan->used;
    if (scan->used * 2 > scan->mask && !grow_slots(scan)) return -1;
    return (long long)(scan->used - 1);
}

static int add_row(Scan *scan, int group, long long duration) {
    if (scan->rows == scan->rows_cap) {
        size_t cap = scan->rows_cap ? scan->rows_cap * 2 : 4096;
        int *groups = realloc(scan->row_group, cap * sizeof *groups);
        if (groups == NULL) return 0;
        scan->row_group = groups;
        long long *durations = realloc(scan->row_duration, cap * sizeof *durations);
        if (durations == NULL) return 0;
        scan->row_duration = durations;
        scan->rows_cap = cap;
    }
    scan->row_group[scan->rows] = group;
    scan->row_duration[scan->rows++] = duration;
    return 1;
}

/* The group of column ``col``'s value: TEXT, NULL, or (``integers``) an INTEGER as its
 * decimal text; -1 out of memory, -2 a value it does not read. */
static long long column_group(sqlite3_stmt *stmt, int col, Scan *scan, int integers) {
    int type = api.column_type(stmt, col);
    long long group;
    if (type == SQLITE_NULL) {
        group = group_of(scan, NULL, -1);
    } else if (type == SQLITE_TEXT) {
        const char *text = (const char *)api.column_text(stmt, col);
        if (text == NULL) return -1;
        group = group_of(scan, text, api.column_bytes(stmt, col));
    } else if (type == SQLITE_INTEGER && integers) {
        char digits[24];
        int n = snprintf(digits, sizeof digits, "%lld", api.column_int64(stmt, col));
        group = group_of(scan, digits, n);
    } else {
        return -2;
    }
    return group > INT_MAX ? -2 : group;
}

/* One row of ``group`` with the duration of column 1, an error if column 2 is true. */
static int count_row(sqlite3_stmt *stmt, Scan *scan, long long group) {
    if (api.column_type(stmt, 1) != SQLITE_INTEGER) return SCAN_DECLINE;
    long long duration = api.column_int64(stmt, 1);
    int type = api.column_type(stmt, 2);
    if (type != SQLITE_NULL && type != SQLITE_INTEGER) return SCAN_DECLINE;
    Group *g = &scan->groups[group];
    if (g->count == 0 || duration > g->longest) g->longest = duration;
    g->count++;
    g->errors += type == SQLITE_INTEGER && api.column_int64(stmt, 2) != 0;
    return add_row(scan, (int)group, duration) ? SCAN_DONE : SCAN_NOMEM;
}

/* The rows of (group, duration, is-error). */
static int read_rows(sqlite3_stmt *stmt, Scan *scan) {
    int rc;
    while ((rc = api.step(stmt)) == SQLITE_ROW) {
        long long group = column_group(stmt, 0, scan, 0);
        if (group < 0) return group == -1 ? SCAN_NOMEM : SCAN_DECLINE;
        if ((rc = count_row(stmt, scan, group)) != SCAN_DONE) return rc;
    }
    return rc == SQLITE_DONE ? SCAN_DONE : SCAN_ERROR;
}

static int by_duration(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* Each group's durations together in one array, each stretch sorted. */
static long long *sort_groups(Scan *scan) {
    long long *sorted = malloc((scan->rows ? scan->rows : 1) * sizeof *sorted);
    if (sorted == NULL) return NULL;
    long long next = 0;
    for (size_t g = 0; g < scan->used; g++) {
        scan->groups[g].first = next;
        next += scan->groups[g].count;
    }
    long long *fill = malloc((scan->used ? scan->used : 1) * sizeof *fill);
    if (fill == NULL) {
        free(sorted);
        return NULL;
    }
    for (size_t g = 0; g < scan->used; g++) fill[g] = scan->groups[g].first;
    for (size_t r = 0; r < scan->rows; r++)
        sorted[fill[scan->row_group[r]]++] = scan->row_duration[r];
    free(fill);
    for (size_t g = 0; g < scan->used; g++)
        qsort(sorted + scan->groups[g].first, (size_t)scan->groups[g].count, sizeof *sorted,
              by_duration);
    return sorted;
}

static void free_scan(Scan *scan) {
    free(scan->groups);
    free(scan->slots);
    free(scan->arena);
    free(scan->row_group);
    free(scan->row_duration);
}

/* One group's (value, count, errors, longest, [durations at percentiles]). */
static PyObject *group_row(const Scan *scan, const Group *g, const long long *sorted,
                           const long *percentiles, Py_ssize_t n) {
    PyObject *value =
        g->len < 0 ? Py_NewRef(Py_None)
                   : PyUnicode_DecodeUTF8(scan->arena + g->key, g->len, NULL);
    PyObject *ranked = value != NULL ? PyList_New(n) : NULL;
    for (Py_ssize_t i = 0; ranked != NULL && i < n; i++) {
        long long rank = (percentiles[i] * g->count + 99) / 100 - 1; /* nearest rank */
        PyObject *d = PyLong_FromLongLong(sorted[g->first + (rank > 0 ? rank : 0)]);
        if (d == NULL) Py_CLEAR(ranked);
        else PyList_SET_ITEM(ranked, i, d);
    }
    if (ranked == NULL) {
        Py_XDECREF(value);
        return NULL;
    }
    return Py_BuildValue("(NLLLN)", value, g->count, g->errors, g->longest, ranked);
}

/* The primary result codes the sqlite3 module raises OperationalError for. */
static const char OPERATIONAL[] = {1, 3, 4, 5, 6, 8, 9, 10, 13, 14, 15, 16, 17, 0};

static void raise_operational(const char *message, int code) {
    PyObject *exc = PyObject_CallFunction(operational_error, "s", message ? message : "error");
    if (exc == NULL) return;
    PyObject *number = PyLong_FromLong(code);
    if (number != NULL && PyObject_SetAttrString(exc, "sqlite_errorcode", number) == 0)
        PyErr_SetObject(operational_error, exc);
    Py_XDECREF(number);
    Py_DECREF(exc);
}

/* ---- Root values (``root_values``, ``group_durations_by_id``) ----
 *
 * ``chatops stats --by KEY`` for an attribute with no column of its own used to read
 * every root span's attribute JSON (about 350 bytes each, 0.8 s of ``json_extract``
 * alone over a million). So each write also stores, per attribute key of its root
 * spans, one blob of (offset of the row in the write, value) entries: the key's values
 * as ``CAST(json_extract(attributes, '$."KEY"') AS TEXT)`` gives them, NULL left out.
 * ``root_values`` makes those blobs from the rows' JSON (which the store's own encoders
 * wrote: ASCII, ``", "`` and ``": "``, flat); ``group_durations_by_id`` maps each id to
 * its value from them, then groups the root spans of a query by it.
 *
 * A value is converted here only where the conversion is plain: a string without
 * escapes, or with escapes other than a lone surrogate or NUL; an integer of at most 18
 * digits; true, false, null. Anything else (a float, an array, a bigger integer) is
 * handed to SQLite's own ``json_extract`` on the writer's connection, so the blob holds
 * exactly what the JSON answers. A document of any other shape (a key with an escape, a
 * repeated key, text not ASCII) makes ``root_values`` answer None: the write then
 * records no values and readers read those rows' JSON. */

typedef struct {
    unsigned char *data;
    size_t len, cap;
} Bytes;

static int bytes_put(Bytes *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        unsigned char *data = realloc(b->data, cap);
        if (data == NULL) return 0;
        b->data = data;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, src, n);
    b->len += n;
    return 1;
}

static int bytes_varint(Bytes *b, unsigned long long v) {
    unsigned char out[10];
    size_t n = 0;
    do {
        out[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v) out[n] |= 0x80;
        n++;
    } while (v);
    return bytes_put(b, out, n);
}

/* The next varint of [*p, end); 0 when it runs past the end. */
static int read_varint(const unsigned char **p, const unsigned char *end, unsigned long long *v) {
    unsigned long long r = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        unsigned char c = *(*p)++;
        r |= (unsigned long long)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = r;
            return 1;
        }
    }
    return 0;
}

typedef struct {
    const char *key;
    size_t key_len;
    long long last_offset; /* a key twice in one document: declined */
    int skip;              /* a key with a column of its own: no values kept */
    Bytes out;
} KeyColumn;

typedef struct {
    KeyColumn *cols;
    size_t used, cap;
    sqlite3 *db;
    sqlite3_stmt *convert; /* SELECT CAST(json_extract(?1, '$') AS TEXT), made when needed */
    Bytes scratch;
    PyObject *skip; /* a frozenset of keys */
} Builder;

enum { RV_DONE = 0, RV_DECLINE = 1, RV_NOMEM = 2 };

static KeyColumn *column_for(Builder *b, const char *key, size_t len, size_t hint) {
    if (hint < b->used && b->cols[hint].key_len == len && memcmp(b->cols[hint].key, key, len) == 0)
        return &b->cols[hint];
    for (size_t i = 0; i < b->used; i++)
        if (b->cols[i].key_len == len && memcmp(b->cols[i].key, key, len) == 0) return &b->cols[i];
    if (b->used == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        KeyColumn *cols = realloc(b->cols, cap * sizeof *cols);
        if (cols == NULL) return NULL;
        b->cols = cols;
        b->cap = cap;
    }
    PyObject *name = PyUnicode_DecodeASCII(key, (Py_ssize_t)len, NULL);
    int skip = name == NULL ? -1 : PySet_Contains(b->skip, name);
    Py_XDECREF(name);
    if (skip < 0) {
        PyErr_Clear();
        return NULL;
    }
    KeyColumn *c = &b->cols[b->used++];
    *c = (KeyColumn){.key = key, .key_len = len, .last_offset = -1, .skip = skip};
    return c;
}

static int hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* The UTF-8 of a JSON string's contents (between the quotes) into b->scratch; 0 where a
 * lone surrogate, a NUL or a malformed escape leaves it to SQLite. */
static int unescape(Builder *b, const char *s, size_t n) {
    b->scratch.len = 0;
    for (size_t i = 0; i < n;) {
        size_t run = i;
        while (run < n && s[run] != '\\') run++;
        if (!bytes_put(&b->scratch, s + i, run - i)) return -1;
        if (run == n) break;
        i = run + 1;
        if (i >= n) return 0;
        char e = s[i++], c;
        switch (e) {
        case '"': c = '"'; break;
        case '\\': c = '\\'; break;
        case '/': c = '/'; break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'n': c = '\n'; break;
        case 'r': c = '\r'; break;
        case 't': c = '\t'; break;
        case 'u': {
            unsigned u, low;
            if (i + 4 > n || !hex4(s + i, &u)) return 0;
            i += 4;
            if (u == 0 || (u >= 0xDC00 && u <= 0xDFFF)) return 0;
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (i + 6 > n || s[i] != '\\' || s[i + 1] != 'u' || !hex4(s + i + 2, &low) ||
                    low < 0xDC00 || low > 0xDFFF)
                    return 0;
                i += 6;
                u = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00);
            }
            unsigned char utf8[4];
            size_t len;
            if (u < 0x80) {
                utf8[0] = (unsigned char)u;
                len = 1;
            } else if (u < 0x800) {
                utf8[0] = (unsigned char)(0xC0 | (u >> 6));
                utf8[1] = (unsigned char)(0x80 | (u & 0x3F));
                len = 2;
            } else if (u < 0x10000) {
                utf8[0] = (unsigned char)(0xE0 | (u >> 12));
                utf8[1] = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
                utf8[2] = (unsigned char)(0x80 | (u & 0x3F));
                len = 3;
            } else {
                utf8[0] = (unsigned char)(0xF0 | (u >> 18));
                utf8[1] = (unsigned char)(0x80 | ((u >> 12) & 0x3F));
                utf8[2] = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
                utf8[3] = (unsigned char)(0x80 | (u & 0x3F));
                len = 4;
            }
            if (!bytes_put(&b->scratch, utf8, len)) return -1;
            continue;
        }
        default: return 0;
        }
        if (!bytes_put(&b->scratch, &c, 1)) return -1;
    }
    return 1;
}

/* SQLite's text for one JSON value, into b->scratch; *null when it is NULL, or when SQLite
 * finds it malformed (the JSON path then fails on the whole document anyway). Any other
 * failure (an interrupt, no memory) declines: the write keeps no values. */
static int sqlite_text(Builder *b, const char *v, size_t n, int *null) {
    if (b->convert == NULL) {
        static const char sql[] = "SELECT CAST(json_extract(?1, '$') AS TEXT)";
        if (api.prepare_v2(b->db, sql, (int)sizeof sql - 1, &b->convert, NULL) != SQLITE_OK)
            return RV_DECLINE;
    }
    int rc = RV_DONE, step;
    *null = 1;
    b->scratch.len = 0;
    if (api.bind_text(b->convert, 1, v, (int)n, SQLITE_STATIC) != SQLITE_OK) {
        rc = RV_DECLINE;
    } else if ((step = api.step(b->convert)) == SQLITE_ROW) {
        if (api.column_type(b->convert, 0) != SQLITE_NULL) {
            const unsigned char *text = api.column_text(b->convert, 0);
            if (text == NULL) rc = RV_NOMEM;
            else if (!bytes_put(&b->scratch, text, (size_t)api.column_bytes(b->convert, 0)))
                rc = RV_NOMEM;
            else *null = 0;
        }
    } else if ((step & 0xff) != SQLITE_ERROR) {
        rc = RV_DECLINE;
    }
    api.reset(b->convert);
    return rc;
}

/* One value's entry in its key's blob: (offset, length, bytes); nothing for NULL. */
static int put_value(Builder *b, KeyColumn *col, unsigned long long offset, const char *v,
                     size_t n) {
    const char *text = NULL;
    size_t len = 0;
    int null = 0, rc;
    if (n >= 2 && v[0] == '"') {
        if (memchr(v + 1, '\\', n - 2) == NULL) {
            text = v + 1;
            len = n - 2;
        } else if ((rc = unescape(b, v + 1, n - 2)) < 0) {
            return RV_NOMEM;
        } else if (rc == 0 && (rc = sqlite_text(b, v, n, &null)) != RV_DONE) {
            return rc;
        } else {
            text = (const char *)b->scratch.data;
            len = b->scratch.len;
        }
    } else if (n == 4 && memcmp(v, "true", 4) == 0) {
        text = "1";
        len = 1;
    } else if (n == 5 && memcmp(v, "false", 5) == 0) {
        text = "0";
        len = 1;
    } else if (n == 4 && memcmp(v, "null", 4) == 0) {
        null = 1;
    } else {
        size_t i = v[0] == '-', digits = 0;
        while (i + digits < n && v[i + digits] >= '0' && v[i + digits] <= '9') digits++;
        if (i + digits == n && digits >= 1 && digits <= 18 && (v[i] != '0' || digits == 1) &&
            !(i == 1 && v[1] == '0')) {
            text = v;
            len = n;
        } else if ((rc = sqlite_text(b, v, n, &null)) != RV_DONE) {
            return rc;
        } else {
            text = (const char *)b->scratch.data;
            len = b->scratch.len;
        }
    }
    if (null) return RV_DONE;
    if (!bytes_varint(&col->out, offset) || !bytes_varint(&col->out, len) ||
        !bytes_put(&col->out, text, len))
        return RV_NOMEM;
    return RV_DONE;
}

static size_t skip_space(const char *s, size_t i, size_t n) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

/* The end of the JSON string starting at s[i] (a quote), past its closing quote; 0 if none. */
static size_t string_end(const char *s, size_t i, size_t n) {
    for (i++; i < n; i++) {
        if (s[i] == '\\') i++;
        else if (s[i] == '"') return i + 1;
    }
    return 0;
}

/* The end of the value starting at s[i]: a string, a nested array or object, or a scalar. */
static size_t value_end(const char *s, size_t i, size_t n) {
    if (i >= n) return 0;
    if (s[i] == '"') return string_end(s, i, n);
    if (s[i] == '[' || s[i] == '{') {
        int depth = 0;
        while (i < n) {
            char c = s[i];
            if (c == '"') {
                if ((i = string_end(s, i, n)) == 0) return 0;
                continue;
            }
            if (c == '[' || c == '{') depth++;
            else if ((c == ']' || c == '}') && --depth == 0) return i + 1;
            i++;
        }
        return 0;
    }
    while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ' ' && s[i] != ']') i++;
    return i;
}

/* Every key of one flat JSON object into its column, at ``offset``. */
static int scan_document(Builder *b, const char *s, size_t n, unsigned long long offset) {
    size_t i = skip_space(s, 0, n), k = 0;
    if (i >= n || s[i] != '{') return RV_DECLINE;
    i = skip_space(s, i + 1, n);
    if (i < n && s[i] == '}') return skip_space(s, i + 1, n) == n ? RV_DONE : RV_DECLINE;
    for (;; k++) {
        if (i >= n || s[i] != '"') return RV_DECLINE;
        size_t key_end = string_end(s, i, n);
        if (key_end == 0 || memchr(s + i + 1, '\\', key_end - i - 2) != NULL) return RV_DECLINE;
        KeyColumn *col = column_for(b, s + i + 1, key_end - i - 2, k);
        if (col == NULL) return RV_NOMEM;
        if (col->last_offset == (long long)offset) return RV_DECLINE; /* the key twice */
        col->last_offset = (long long)offset;
        i = skip_space(s, key_end, n);
        if (i >= n || s[i] != ':') return RV_DECLINE;
        i = skip_space(s, i + 1, n);
        size_t end = value_end(s, i, n);
        if (end == 0 || end <= i) return RV_DECLINE;
        int rc = col->skip ? RV_DONE : put_value(b, col, offset, s + i, end - i);
        if (rc != RV_DONE) return rc;
        i = skip_space(s, end, n);
        if (i < n && s[i] == ',') {
            i = skip_space(s, i + 1, n);
            continue;
        }
        if (i < n && s[i] == '}') return skip_space(s, i + 1, n) == n ? RV_DONE : RV_DECLINE;
        return RV_DECLINE;
    }
}

static void free_builder(Builder *b) {
    for (size_t i = 0; i < b->used; i++) free(b->cols[i].out.data);
    free(b->cols);
    free(b->scratch.data);
    if (b->convert != NULL) api.finalize(b->convert);
}

static PyObject *root_values(PyObject *module, PyObject *args) {
    PyObject *conn, *items_arg, *skip;
    (void)module;
    if (!PyArg_ParseTuple(args, "OOO!:root_values", &conn, &items_arg, &PyFrozenSet_Type, &skip))
        return NULL;
#if KNOWN_LAYOUT
    if (!ready || !PyObject_TypeCheck(conn, (PyTypeObject *)connection_type) ||
        !(PyList_CheckExact(items_arg) || PyTuple_CheckExact(items_arg)))
        Py_RETURN_NONE;
    sqlite3 *db = ((ConnectionHead *)conn)->db;
    if (db == NULL) Py_RETURN_NONE;
    PyObject *items = PySequence_Tuple(items_arg); /* holds every document while we read */
    if (items == NULL) return NULL;
    Builder b = {.db = db, .skip = skip};
    int rc = RV_DONE;
    for (Py_ssize_t r = 0; rc == RV_DONE && r < PyTuple_GET_SIZE(items); r++) {
        PyObject *item = PyTuple_GET_ITEM(items, r);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2) {
            rc = RV_DECLINE;
            break;
        }
        PyObject *offset = PyTuple_GET_ITEM(item, 0), *doc = PyTuple_GET_ITEM(item, 1);
        long long off = PyLong_CheckExact(offset) ? PyLong_AsLongLong(offset) : -1;
        if (off < 0 || !PyUnicode_CheckExact(doc) || !PyUnicode_IS_ASCII(doc)) {
            PyErr_Clear();
            rc = RV_DECLINE;
            break;
        }
        rc = scan_document(&b, (const char *)PyUnicode_DATA(doc),
                           (size_t)PyUnicode_GET_LENGTH(doc), (unsigned long long)off);
    }
    PyObject *result = NULL;
    if (rc == RV_NOMEM) {
        PyErr_NoMemory();
    } else if (rc != RV_DONE) {
        result = Py_NewRef(Py_None);
    } else if ((result = PyList_New(0)) != NULL) {
        for (size_t i = 0; i < b.used; i++) {
            KeyColumn *c = &b.cols[i];
            if (c->out.len == 0) continue; /* skipped, or only NULLs: the same as no entry */
            PyObject *pair = Py_BuildValue("(s#y#)", c->key, (Py_ssize_t)c->key_len,
                                           (const char *)c->out.data, (Py_ssize_t)c->out.len);
            if (pair == NULL || PyList_Append(result, pair) < 0) {
                Py_XDECREF(pair);
                Py_CLEAR(result);
                break;
            }
            Py_DECREF(pair);
        }
    }
    free_builder(&b);
    Py_DECREF(items);
    return result;
#else
    Py_RETURN_NONE;
#endif
}

/* Ids to groups: one slot per id from ``low`` to ``high`` (a store's ids are dense: SQLite
 * gives each row the next, retention deletes the oldest), holding group + 1 (0: none).
 * Rows are read in about id order, so the slots are touched about in order too. */
typedef struct {
    long long low, high;
    int *slots;
} IdMap;

/* The most ids a map takes (512 MiB of slots); a wider store is left to the Python pass. */
#define MAX_MAP_IDS (1LL << 27)

static int id_put(IdMap *m, long long id, int group) {
    if (id >= m->low && id <= m->high) m->slots[id - m->low] = group + 1;
    return 1;
}

/* The group of ``id``; -1 when it has no value. */
static int id_get(const IdMap *m, long long id) {
    return id >= m->low && id <= m->high ? m->slots[id - m->low] - 1 : -1;
}

/* What a read of values does with each (id, value): ``len`` -1 for NULL. */
typedef int (*ValueFn)(void *context, long long id, const char *text, long long len);

/* Each (id, value) of a values query's rows: (first_id, last_id, BLOB of entries) for a
 * write, its entries past last_id left out (cut short since), or (id, id, TEXT or NULL)
 * for one span read from its JSON, which replaces what a blob said of it (those rows
 * come last). */
static int each_value(sqlite3_stmt *stmt, ValueFn fn, void *context) {
    int rc;
    while ((rc = api.step(stmt)) == SQLITE_ROW) {
        if (api.column_type(stmt, 0) != SQLITE_INTEGER || api.column_type(stmt, 1) != SQLITE_INTEGER)
            return SCAN_DECLINE;
        long long first = api.column_int64(stmt, 0), last = api.column_int64(stmt, 1);
        if (last < first) return SCAN_DECLINE; /* not what the store writes */
        int type = api.column_type(stmt, 2);
        if (type == SQLITE_BLOB) {
            const unsigned char *p = api.column_blob(stmt, 2);
            const unsigned char *end = p + api.column_bytes(stmt, 2);
            while (p < end) {
                unsigned long long offset, len;
                if (!read_varint(&p, end, &offset) || !read_varint(&p, end, &len) ||
                    len > (unsigned long long)(end - p) || len > INT_MAX)
                    return SCAN_DECLINE;
                const char *text = (const char *)p;
                p += len;
                if (offset > (unsigned long long)(last - first)) continue;
                if ((rc = fn(context, first + (long long)offset, text, (long long)len)) != SCAN_DONE)
                    return rc;
            }
            continue;
        }
        if (type == SQLITE_NULL) {
            rc = fn(context, first, NULL, -1);
        } else if (type == SQLITE_TEXT) {
            const char *text = (const char *)api.column_text(stmt, 2);
            if (text == NULL) return SCAN_NOMEM;
            rc = fn(context, first, text, api.column_bytes(stmt, 2));
        } else {
            return SCAN_DECLINE;
        }
        if (rc != SCAN_DONE) return rc;
    }
    return rc == SQLITE_DONE ? SCAN_DONE : SCAN_ERROR;
}

/* Whether ``id`` is set in ``filter``, a bitmap from ``low`` on (NULL: every id is). */
static int id_kept(const unsigned char *filter, long long low, long long high, long long id) {
    if (filter == NULL) return 1;
    if (id < low || id > high) return 0;
    long long bit = id - low;
    return (filter[bit >> 3] >> (bit & 7)) & 1;
}

/* What one read works on: the groups, the ids' groups, a filter of ids, and for
 * ``ids_with_value`` the bitmap it marks and the value wanted. */
typedef struct {
    Scan *scan;
    IdMap *map;
    const unsigned char *filter;
    unsigned char *bits;
    const char *wanted;
    long long wanted_len;
} Reading;

/* An id's value into ``map``, as its group. */
static int map_value(void *context, long long id, const char *text, long long len) {
    Reading *r = context;
    long long group = group_of(r->scan, text, (int)len);
    if (group < 0) return SCAN_NOMEM;
    if (group > INT_MAX) return SCAN_DECLINE;
    return id_put(r->map, id, (int)group) ? SCAN_DONE : SCAN_NOMEM;
}

/* An id's bit in ``bits``: set if its value is the one wanted, cleared otherwise. */
static int mark_value(void *context, long long id, const char *text, long long len) {
    Reading *r = context;
    if (id < r->map->low || id > r->map->high) return SCAN_DONE;
    long long bit = id - r->map->low;
    if (len == r->wanted_len && memcmp(text, r->wanted, (size_t)len) == 0)
        r->bits[bit >> 3] |= (unsigned char)(1 << (bit & 7));
    else
        r->bits[bit >> 3] &= (unsigned char)~(1 << (bit & 7));
    return SCAN_DONE;
}

/* The root spans' rows (id, duration, is-error[, group]) whose id the filter keeps, each in
 * the group of its fourth column (text, NULL, or an integer as its decimal text) if
 * ``group_column``, else the group its id maps to. */
static int read_roots(sqlite3_stmt *stmt, Reading *r, int group_column) {
    int rc;
    long long none = -1;
    while ((rc = api.step(stmt)) == SQLITE_ROW) {
        if (api.column_type(stmt, 0) != SQLITE_INTEGER) return SCAN_DECLINE;
        long long id = api.column_int64(stmt, 0), group;
        if (!id_kept(r->filter, r->map->low, r->map->high, id)) continue;
        if (group_column) {
            if ((group = column_group(stmt, 3, r->scan, 1)) < 0)
                return group == -1 ? SCAN_NOMEM : SCAN_DECLINE;
        } else if ((group = id_get(r->map, id)) < 0) {
            if (none < 0 && (none = group_of(r->scan, NULL, -1)) < 0) return SCAN_NOMEM;
            group = none;
        }
        if ((rc = count_row(stmt, r->scan, group)) != SCAN_DONE) return rc;
    }
    return rc == SQLITE_DONE ? SCAN_DONE : SCAN_ERROR;
}

/* A statement's parameters as C values; NULL (no error) where only the sqlite3 module can
 * bind them (named parameters, an iterator, a value of another type, more than 64). */
static PyObject *bound(PyObject *params_arg, Value *values, Py_ssize_t *width) {
    if (!PyList_CheckExact(params_arg) && !PyTuple_CheckExact(params_arg)) return NULL;
    PyObject *params = PySequence_Tuple(params_arg); /* keeps bound text alive */
    if (params == NULL) return NULL;
    *width = PyTuple_GET_SIZE(params);
    int ok = *width <= 64;
    for (Py_ssize_t c = 0; ok && c < *width; c++) ok = convert(PyTuple_GET_ITEM(params, c), &values[c]);
    if (!ok) Py_CLEAR(params);
    return params;
}

enum { READ_ROWS, READ_VALUES, READ_MARKS, READ_ROOTS, READ_ROOTS_GROUPED };

/* Prepare, bind and step one read into ``r``; with the GIL released. An error while
 * stepping is SCAN_ERROR with SQLite's message and code: running the query again in Python
 * would wait out a lock twice, or run an interrupted query to its end. */
static int run_read(sqlite3 *db, const char *sql, Py_ssize_t len, const Value *values, int width,
                    Reading *r, int what, char **error, int *code) {
    sqlite3_stmt *stmt = prepare(db, sql, len, what == READ_ROOTS_GROUPED ? 4 : 3, 1, width);
    if (stmt == NULL) return SCAN_DECLINE;
    int rc = SCAN_DECLINE;
    if (bind(stmt, values, width) == SQLITE_OK)
        rc = what == READ_ROWS     ? read_rows(stmt, r->scan)
             : what == READ_VALUES ? each_value(stmt, map_value, r)
             : what == READ_MARKS  ? each_value(stmt, mark_value, r)
                                   : read_roots(stmt, r, what == READ_ROOTS_GROUPED);
    if (rc == SCAN_ERROR) {
        const char *message = api.errmsg(db);
        *error = strdup(message ? message : "unknown error");
        *code = api.extended_errcode(db);
    }
    api.finalize(stmt);
    return rc;
}

/* A read that did not finish: MemoryError or sqlite3's OperationalError raised (NULL), or
 * None where the caller reads in Python instead (a value not read here, or an error
 * sqlite3 classes otherwise: the Python pass reads the rows, or raises). */
static PyObject *not_read(int rc, const char *error, int code) {
    if (rc == SCAN_NOMEM || (rc == SCAN_ERROR && (code & 0xff) == 7 /* SQLITE_NOMEM */)) {
        PyErr_NoMemory();
        return NULL;
    }
    if (rc == SCAN_ERROR && memchr(OPERATIONAL, code & 0xff, sizeof OPERATIONAL - 1)) {
        raise_operational(error, code);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ``group_durations`` (``by_id`` 0) and ``group_durations_by_id``: its ``values_sql`` NULL
 * (None) when the roots' fourth column is their group; ``filter`` NULL or a bitmap. */
static PyObject *grouping(PyObject *conn, int by_id, PyObject *values_sql,
                          PyObject *values_params, long long low, long long high,
                          PyObject *filter_arg, PyObject *sql, PyObject *params_arg,
                          PyObject *percentiles_arg) {
#if KNOWN_LAYOUT
    if (!ready || !PyObject_TypeCheck(conn, (PyTypeObject *)connection_type) || adapted())
        Py_RETURN_NONE;
    sqlite3 *db = ((ConnectionHead *)conn)->db;
    if (db == NULL) Py_RETURN_NONE;
    /* Values as the Python pass would see them: str, the sqlite3 module's default. */
    PyObject *factory = PyObject_GetAttrString(conn, "text_factory");
    if (factory == NULL) return NULL;
    Py_DECREF(factory);
    if (factory != (PyObject *)&PyUnicode_Type) Py_RETURN_NONE;
    Py_ssize_t sql_len, values_len = 0;
    const char *sql_text = PyUnicode_AsUTF8AndSize(sql, &sql_len);
    if (sql_text == NULL) return NULL;
    const char *values_text = NULL;
    if (values_sql != NULL && (values_text = PyUnicode_AsUTF8AndSize(values_sql, &values_len)) == NULL)
        return NULL;
    const unsigned char *filter = NULL;
    if (filter_arg != NULL) {
        if (!PyBytes_CheckExact(filter_arg) || high < low ||
            PyBytes_GET_SIZE(filter_arg) < (high - low + 1 + 7) / 8)
            Py_RETURN_NONE;
        filter = (const unsigned char *)PyBytes_AS_STRING(filter_arg); /* held by the caller */
    }
    if (sql_len > INT_MAX || values_len > INT_MAX) Py_RETURN_NONE;
    long percentiles[8];
    Py_ssize_t n = PyTuple_CheckExact(percentiles_arg) ? PyTuple_GET_SIZE(percentiles_arg) : 9;
    for (Py_ssize_t i = 0; i < n && n <= 8; i++) {
        PyObject *p = PyTuple_GET_ITEM(percentiles_arg, i);
        percentiles[i] = PyLong_CheckExact(p) ? PyLong_AsLong(p) : -1;
        if (percentiles[i] < 0 || percentiles[i] > 100) n = 9;
    }
    PyErr_Clear();
    if (n > 8) Py_RETURN_NONE;
    Value values[64], value_values[64];
    Py_ssize_t width = 0, value_width = 0;
    PyObject *params = bound(params_arg, values, &width);
    PyObject *vparams = values_sql == NULL ? NULL : bound(values_params, value_values, &value_width);
    if (PyErr_Occurred() || params == NULL || (values_sql != NULL && vparams == NULL)) {
        Py_XDECREF(params);
        Py_XDECREF(vparams);
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    Scan scan = {0};
    IdMap map = {low, high, NULL};
    if (values_text != NULL && high >= low) {
        if (high - low >= MAX_MAP_IDS || (map.slots = calloc((size_t)(high - low + 1), sizeof(int))) == NULL) {
            Py_DECREF(params);
            Py_XDECREF(vparams);
            Py_RETURN_NONE;
        }
    }
    long long *sorted = NULL;
    char *error = NULL;
    int rc = SCAN_DONE, code = 0;
    /* Preparing may wait for a lock too (loading the schema): the GIL is released for it,
     * as the sqlite3 module does, so the thread holding that lock can let it go. */
    Reading reading = {.scan = &scan, .map = &map, .filter = filter};
    Py_BEGIN_ALLOW_THREADS
    if (values_text != NULL)
        rc = run_read(db, values_text, values_len, value_values, (int)value_width, &reading,
                      READ_VALUES, &error, &code);
    if (rc == SCAN_DONE)
        rc = run_read(db, sql_text, sql_len, values, (int)width, &reading,
                      !by_id               ? READ_ROWS
                      : values_text != NULL ? READ_ROOTS
                                            : READ_ROOTS_GROUPED,
                      &error, &code);
    if (rc == SCAN_DONE && (sorted = sort_groups(&scan)) == NULL) rc = SCAN_NOMEM;
    Py_END_ALLOW_THREADS
    Py_DECREF(params);
    Py_XDECREF(vparams);
    free(map.slots);
    PyObject *result;
    if (rc != SCAN_DONE) {
        result = not_read(rc, error, code);
    } else if ((result = PyList_New(0)) != NULL) {
        for (size_t g = 0; g < scan.used; g++) {
            if (scan.groups[g].count == 0) continue; /* a value of no root span asked about */
            PyObject *row = group_row(&scan, &scan.groups[g], sorted, percentiles, n);
            if (row == NULL || PyList_Append(result, row) < 0) {
                Py_XDECREF(row);
                Py_CLEAR(result);
                /* Not UTF-8: the Python pass raises sqlite3's own error for it. */
                if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                    PyErr_Clear();
                    result = Py_NewRef(Py_None);
                }
                break;
            }
            Py_DECREF(row);
        }
    }
    free(error);
    free(sorted);
    free_scan(&scan);
    return result;
#else
    Py_RETURN_NONE;
#endif
}

static PyObject *group_durations(PyObject *module, PyObject *args) {
    PyObject *conn, *sql, *params, *percentiles;
    (void)module;
    if (!PyArg_ParseTuple(args, "OUOO:group_durations", &conn, &sql, &params, &percentiles))
        return NULL;
    return grouping(conn, 0, NULL, NULL, 0, -1, NULL, sql, params, percentiles);
}

static PyObject *group_durations_by_id(PyObject *module, PyObject *args) {
    PyObject *conn, *values_sql, *values_params, *sql, *params, *percentiles, *filter;
    long long low, high;
    (void)module;
    if (!PyArg_ParseTuple(args, "OOOLLUOOO:group_durations_by_id", &conn, &values_sql,
                          &values_params, &low, &high, &sql, &params, &percentiles, &filter))
        return NULL;
    if (values_sql != Py_None && !PyUnicode_Check(values_sql)) {
        PyErr_SetString(PyExc_TypeError, "values_sql must be str or None");
        return NULL;
    }
    return grouping(conn, 1, values_sql == Py_None ? NULL : values_sql, values_params, low, high,
                    filter == Py_None ? NULL : filter, sql, params, percentiles);
}

/* ``ids_with_value``: the bitmap (one bit per id from ``low`` to ``high``) of the ids whose
 * value, read as ``group_durations_by_id`` reads ``values_sql``, is ``wanted``. */
static PyObject *ids_with_value(PyObject *module, PyObject *args) {
    PyObject *conn, *values_sql, *values_params, *wanted_arg;
    long long low, high;
    (void)module;
    if (!PyArg_ParseTuple(args, "OUOLLU:ids_with_value", &conn, &values_sql, &values_params, &low,
                          &high, &wanted_arg))
        return NULL;
#if KNOWN_LAYOUT
    if (!ready || !PyObject_TypeCheck(conn, (PyTypeObject *)connection_type) || adapted() ||
        high < low || high - low >= MAX_MAP_IDS)
        Py_RETURN_NONE;
    sqlite3 *db = ((ConnectionHead *)conn)->db;
    if (db == NULL) Py_RETURN_NONE;
    Py_ssize_t sql_len, wanted_len;
    const char *sql_text = PyUnicode_AsUTF8AndSize(values_sql, &sql_len);
    const char *wanted = sql_text ? PyUnicode_AsUTF8AndSize(wanted_arg, &wanted_len) : NULL;
    if (wanted == NULL) return NULL;
    if (sql_len > INT_MAX) Py_RETURN_NONE;
    Value values[64];
    Py_ssize_t width = 0;
    PyObject *params = bound(values_params, values, &width);
    if (params == NULL) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)((high - low + 1 + 7) / 8));
    if (result == NULL) {
        Py_DECREF(params);
        return NULL;
    }
    unsigned char *bits = (unsigned char *)PyBytes_AS_STRING(result);
    memset(bits, 0, (size_t)PyBytes_GET_SIZE(result));
    IdMap map = {low, high, NULL};
    Reading reading = {.map = &map, .bits = bits, .wanted = wanted, .wanted_len = wanted_len};
    char *error = NULL;
    int rc, code = 0;
    Py_BEGIN_ALLOW_THREADS
    rc = run_read(db, sql_text, sql_len, values, (int)width, &reading, READ_MARKS, &error, &code);
    Py_END_ALLOW_THREADS
    Py_DECREF(params);
    if (rc != SCAN_DONE) Py_SETREF(result, not_read(rc, error, code));
    free(error);
    return result;
#else
    Py_RETURN_NONE;
#endif
}

static PyObject *configure(PyObject *module, PyObject *args) {
    PyObject *library, *conn_type, *op_error, *adapter_map, *protocol, *none_fn;
    int version;
    (void)module;
    if (!PyArg_ParseTuple(args, "OO!O!O!O!Oi:configure", &library, &PyType_Type, &conn_type,
                          &PyType_Type, &op_error, &PyDict_Type, &adapter_map, &PyType_Type,
                          &protocol, &none_fn, &version))
        return NULL;
    ready = 0;
    if (!KNOWN_LAYOUT)
        return PyUnicode_FromString("it reads the sqlite3 connection of CPython 3.11 to 3.13 only");
    /* No file (_sqlite3 built into Python): its SQLite cannot be told from any other. */
    if (library == Py_None)
        return PyUnicode_FromString("_sqlite3 is built into this Python: its SQLite cannot be found");
    const char *path = PyUnicode_AsUTF8(library);
    if (path == NULL) return NULL;
    void *handle = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (handle == NULL) return PyUnicode_FromFormat("%s is not loaded", path);
    struct {
        void **slot;
        const char *name;
    } symbols[] = {
        {(void **)&api.prepare_v2, "sqlite3_prepare_v2"},
        {(void **)&api.bind_parameter_count, "sqlite3_bind_parameter_count"},
        {(void **)&api.column_count, "sqlite3_column_count"},
        {(void **)&api.stmt_readonly, "sqlite3_stmt_readonly"},
        {(void **)&api.bind_int64, "sqlite3_bind_int64"},
        {(void **)&api.bind_double, "sqlite3_bind_double"},
        {(void **)&api.bind_text, "sqlite3_bind_text"},
        {(void **)&api.bind_null, "sqlite3_bind_null"},
        {(void **)&api.step, "sqlite3_step"},
        {(void **)&api.reset, "sqlite3_reset"},
        {(void **)&api.finalize, "sqlite3_finalize"},
        {(void **)&api.get_autocommit, "sqlite3_get_autocommit"},
        {(void **)&api.errmsg, "sqlite3_errmsg"},
        {(void **)&api.libversion_number, "sqlite3_libversion_number"},
        {(void **)&api.column_type, "sqlite3_column_type"},
        {(void **)&api.column_int64, "sqlite3_column_int64"},
        {(void **)&api.column_text, "sqlite3_column_text"},
        {(void **)&api.column_bytes, "sqlite3_column_bytes"},
        {(void **)&api.extended_errcode, "sqlite3_extended_errcode"},
        {(void **)&api.column_blob, "sqlite3_column_blob"},
    };
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
        /* _sqlite3's own references resolve in the global scope first (a preloaded SQLite):
         * where that finds another definition, which one it uses cannot be known here. */
        void *own = dlsym(handle, symbols[i].name);
        void *global = dlsym(RTLD_DEFAULT, symbols[i].name);
        if (own == NULL)
            return PyUnicode_FromFormat("_sqlite3's SQLite has no %s", symbols[i].name);
        if (global != NULL && global != own)
            return PyUnicode_FromFormat("another SQLite in this process defines %s",
                                        symbols[i].name);
        *symbols[i].slot = own;
    }
    if (api.libversion_number() != version)
        return PyUnicode_FromFormat("SQLite %d is loaded, the sqlite3 module reports %d",
                                    api.libversion_number(), version);
    PyObject *types[] = {(PyObject *)&PyLong_Type, (PyObject *)&PyFloat_Type,
                         (PyObject *)&PyUnicode_Type, (PyObject *)&PyBool_Type};
    PyObject *keys = PyTuple_New(4);
    PyObject *nkey = PyTuple_Pack(2, (PyObject *)Py_TYPE(Py_None), protocol);
    if (keys == NULL || nkey == NULL) {
        Py_XDECREF(keys);
        Py_XDECREF(nkey);
        return NULL;
    }
    for (int i = 0; i < 4; i++) {
        PyObject *key = PyTuple_Pack(2, types[i], protocol);
        if (key == NULL) {
            Py_DECREF(keys);
            Py_DECREF(nkey);
            return NULL;
        }
        PyTuple_SET_ITEM(keys, i, key);
    }
    Py_XSETREF(base_keys, keys);
    Py_XSETREF(none_key, nkey);
    Py_XSETREF(adapters, Py_NewRef(adapter_map));
    Py_XSETREF(none_adapter, Py_NewRef(none_fn));
    Py_XSETREF(connection_type, Py_NewRef(conn_type));
    Py_XSETREF(operational_error, Py_NewRef(op_error));
    ready = 1;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"insert_rows", insert_rows, METH_VARARGS,
     "insert_rows(conn, sql, rows) -> bool: True if written, False to use executemany."},
    {"group_durations", group_durations, METH_VARARGS,
     "group_durations(conn, sql, params, percentiles) -> [(value, count, errors, longest, "
     "[duration at each percentile])], or None to use a pass in Python."},
    {"group_durations_by_id", group_durations_by_id, METH_VARARGS,
     "group_durations_by_id(conn, values_sql, values_params, low, high, sql, params, "
     "percentiles, id_filter) -> as group_durations, each id of sql's first column in the "
     "group values_sql gives it (None: sql's fourth column), if id_filter keeps it."},
    {"ids_with_value", ids_with_value, METH_VARARGS,
     "ids_with_value(conn, values_sql, values_params, low, high, wanted) -> bitmap of the ids "
     "whose value is wanted, or None to read the JSON."},
    {"root_values", root_values, METH_VARARGS,
     "root_values(conn, [(offset, attributes_json)], skip) -> [(key, blob)] for each key not "
     "in skip, or None where the documents are not the store's own flat JSON."},
    {"configure", configure, METH_VARARGS,
     "configure(library, Connection, OperationalError, adapters, PrepareProtocol, none_adapter, "
     "sqlite_version_number) -> None if usable here, else why not."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, .m_name = "_store_sqlite", .m_size = -1, .m_methods = methods,
};

PyMODINIT_FUNC PyInit__store_sqlite(void) { return PyModule_Create(&module_def); }
