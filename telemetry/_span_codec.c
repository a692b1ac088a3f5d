/* Spans as OTLP bytes and as store rows, in C.
 *
 * One finished span as the bytes of an OTLP ``Span`` message:
 *
 * The pure-Python encoder (telemetry/otlp_wire.py) cost ~44,000 instructions a
 * span, about as much as making the span; this writes the same bytes in a
 * fraction of that. It covers the spans a message makes (no events, links,
 * trace state or dropped counts; attribute values that are str, bool, int,
 * float or None, in a plain dict) and hands every other span, unchanged, to the
 * Python encoder registered with ``set_fallback``: the two must give identical
 * bytes, which tests/unit/test_otlp_wire.py checks span by span.
 *
 * Field numbers are those of opentelemetry/proto/trace/v1/trace.proto and
 * common.proto, the same ones otlp_wire.FIELDS lists and its test checks.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>
#include <math.h>

static PyObject *fallback = NULL;
/* The lean tracer's span type: its fields are read from the instance (``_context``...),
 * not through the ReadableSpan properties, which cost a descriptor and a call each. */
static PyTypeObject *lean_type = NULL;
static PyObject *s_context, *s_parent, *s_name, *s_kind, *s_start_time, *s_end_time,
    *s_attributes, *s_dropped_attributes, *s_events, *s_dropped_events, *s_links,
    *s_dropped_links, *s_status, *s_value, *s_status_code, *s_description;
static PyObject *p_context, *p_parent, *p_name, *p_kind, *p_start_time, *p_end_time,
    *p_attributes, *p_events, *p_links, *p_status, *p_resource;

typedef struct {
    PyObject **context, **parent, **name, **kind, **start_time, **end_time, **attributes,
        **events, **links, **status;
    int check_dropped;
} Names;

/* The lean span's fields are slots: read at their offsets (set_lean_type finds them). */
enum { F_CONTEXT, F_PARENT, F_NAME, F_KIND, F_START, F_END, F_ATTRIBUTES, F_EVENTS, F_LINKS,
       F_STATUS, F_RESOURCE, F_COUNT };
static Py_ssize_t lean_offsets[F_COUNT];

/* SpanKind and StatusCode members by value, and the empty TraceState the tracer shares:
 * compared by identity, since their ``value``/``__len__`` are Python code. */
#define MAX_ENUM 8
static PyObject *kinds[MAX_ENUM], *codes[MAX_ENUM];
static Py_ssize_t kind_count = 0, code_count = 0;
static PyObject *empty_state = NULL;
static PyObject *s_status_code_attr, *s_description_attr;

static int truthy(PyObject *v) {
    if (v == Py_None) return 0;
    if (PyList_CheckExact(v)) return PyList_GET_SIZE(v) != 0;
    if (PyTuple_CheckExact(v)) return PyTuple_GET_SIZE(v) != 0;
    /* ints go through PyObject_IsTrue too: from 3.12 an int has no ob_size (Py_SIZE asserts,
     * or reads the digit count and sign tag, which is never 0) */
    return PyObject_IsTrue(v);
}

static long enum_value(PyObject *member, PyObject **table, Py_ssize_t count) {
    for (Py_ssize_t i = 0; i < count; i++)
        if (table[i] == member) return (long)i;
    return -1;
}

static const Names public_names = {&s_context, &s_parent, &s_name, &s_kind, &s_start_time,
                                   &s_end_time, &s_attributes, &s_events, &s_links, &s_status,
                                   1};
static const Names lean_names = {&p_context, &p_parent, &p_name, &p_kind, &p_start_time,
                                 &p_end_time, &p_attributes, &p_events, &p_links, &p_status,
                                 0};

typedef struct {
    char *data;
    Py_ssize_t len, cap;
    char inline_buf[1024];
} Buf;

static int grow(Buf *b, Py_ssize_t need) {
    if (need < 0 || need > PY_SSIZE_T_MAX / 2 - b->len) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t cap = b->cap;
    while (cap < b->len + need) cap *= 2; /* ends at most 2 * (len + need), no overflow */
    char *data;
    if (b->data == b->inline_buf) {
        data = PyMem_Malloc(cap);
        if (data) memcpy(data, b->data, b->len);
    } else {
        data = PyMem_Realloc(b->data, cap);
    }
    if (!data) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

/* cap >= len always, so the subtraction cannot overflow where ``len + n`` could */
#define RESERVE(b, n) \
    if ((Py_ssize_t)(n) > (b)->cap - (b)->len && grow((b), (n)) < 0) return -1

static int put(Buf *b, const void *src, Py_ssize_t n) {
    RESERVE(b, n);
    memcpy(b->data + b->len, src, n);
    b->len += n;
    return 0;
}

static int put_byte(Buf *b, unsigned char c) {
    RESERVE(b, 1);
    b->data[b->len++] = (char)c;
    return 0;
}

static Py_ssize_t varint_size(uint64_t n) {
    Py_ssize_t size = 1;
    while (n >= 0x80) {
        n >>= 7;
        size++;
    }
    return size;
}

static int put_varint(Buf *b, uint64_t n) {
    RESERVE(b, 10);
    while (n >= 0x80) {
        b->data[b->len++] = (char)((n & 0x7F) | 0x80);
        n >>= 7;
    }
    b->data[b->len++] = (char)n;
    return 0;
}

static int put_fixed64(Buf *b, uint64_t n) {
    RESERVE(b, 8);
    for (int i = 0; i < 8; i++) b->data[b->len++] = (char)(n >> (8 * i));
    return 0;
}

/* Outcome of encoding: 0 done, -1 a Python error is set, 1 the span needs the fallback. */
#define DONE 0
#define FAILED (-1)
#define FALL_BACK 1

/* A length-delimited string field: tag, length, UTF-8 bytes. */
static int put_str_field(Buf *b, unsigned char tag, const char *s, Py_ssize_t n) {
    if (put_byte(b, tag) < 0 || put_varint(b, (uint64_t)n) < 0) return FAILED;
    return put(b, s, n) < 0 ? FAILED : DONE;
}

/* One attribute as ``attributes`` field of a Span: tag 9, then a sized KeyValue. */
static int put_attribute(Buf *b, PyObject *key, PyObject *value) {
    Py_ssize_t key_len, value_len = 0;
    const char *key_s, *value_s = NULL;
    unsigned char scalar[10];
    Py_ssize_t scalar_len = 0;
    unsigned char any_tag = 0;

    /* exact str only: Python calls a subclass's own ``encode``, ``__hash__``, ``__eq__`` */
    if (!PyUnicode_CheckExact(key)) return FALL_BACK;
    key_s = PyUnicode_AsUTF8AndSize(key, &key_len);
    if (key_s == NULL) {
        PyErr_Clear();
        return FALL_BACK;
    }
    /* AnyValue body size */
    Py_ssize_t any_len;
    if (value == Py_None) {
        any_len = 0;
    } else if (PyUnicode_CheckExact(value)) {
        value_s = PyUnicode_AsUTF8AndSize(value, &value_len);
        if (value_s == NULL) {
            PyErr_Clear();
            return FALL_BACK;
        }
        any_tag = 0x0A;
        any_len = 1 + varint_size((uint64_t)value_len) + value_len;
    } else if (PyBool_Check(value)) {
        any_tag = 0x10;
        scalar[0] = value == Py_True ? 1 : 0;
        scalar_len = 1;
        any_len = 2;
    } else if (PyLong_CheckExact(value)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow || (v == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return FALL_BACK;
        }
        uint64_t u = (uint64_t)v;
        any_tag = 0x18;
        while (u >= 0x80) {
            scalar[scalar_len++] = (unsigned char)((u & 0x7F) | 0x80);
            u >>= 7;
        }
        scalar[scalar_len++] = (unsigned char)u;
        any_len = 1 + scalar_len;
    } else if (PyFloat_CheckExact(value)) {
        double d = PyFloat_AS_DOUBLE(value);
        if (PyFloat_Pack8(d, (char *)scalar, 1) < 0) return FAILED;
        any_tag = 0x21;
        scalar_len = 8;
        any_len = 9;
    } else {
        return FALL_BACK;
    }
    Py_ssize_t kv_len = 0;
    if (key_len) kv_len += 1 + varint_size((uint64_t)key_len) + key_len;
    kv_len += 1 + varint_size((uint64_t)any_len) + any_len;

    if (put_byte(b, 0x4A) < 0 || put_varint(b, (uint64_t)kv_len) < 0) return FAILED;
    if (key_len && put_str_field(b, 0x0A, key_s, key_len) < 0) return FAILED;
    if (put_byte(b, 0x12) < 0 || put_varint(b, (uint64_t)any_len) < 0) return FAILED;
    if (any_tag == 0) return DONE;
    if (put_byte(b, any_tag) < 0) return FAILED;
    if (any_tag == 0x0A) {
        if (put_varint(b, (uint64_t)value_len) < 0 || put(b, value_s, value_len) < 0) return FAILED;
        return DONE;
    }
    return put(b, scalar, scalar_len) < 0 ? FAILED : DONE;
}

static int put_id(Buf *b, unsigned char tag, PyObject *id, size_t size) {
    unsigned char raw[16];
    if (!PyLong_CheckExact(id)) return FALL_BACK; /* a subclass may have its own to_bytes */
#if PY_VERSION_HEX >= 0x030D0000
    if (_PyLong_AsByteArray((PyLongObject *)id, raw, size, 0, 0, 1) < 0) {
#else
    if (_PyLong_AsByteArray((PyLongObject *)id, raw, size, 0, 0) < 0) {
#endif
        PyErr_Clear();
        return FALL_BACK;
    }
    if (put_byte(b, tag) < 0 || put_byte(b, (unsigned char)size) < 0) return FAILED;
    return put(b, raw, (Py_ssize_t)size) < 0 ? FAILED : DONE;
}

static PyObject *field(PyObject *span, const Py_ssize_t *lean, int index, PyObject *name);

static int put_time(Buf *b, unsigned char tag, PyObject *span, const Py_ssize_t *lean, int index,
                    PyObject *name) {
    PyObject *v = field(span, lean, index, name);
    if (v == NULL) return FAILED;
    int result = DONE;
    if (v == Py_None) {
        /* as ``if start:`` in Python: nothing written */
    } else if (!PyLong_CheckExact(v)) {
        result = FALL_BACK;
    } else {
        unsigned long long t = PyLong_AsUnsignedLongLong(v);
        if (t == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            result = FALL_BACK;
        } else if (t != 0) {
            result = put_byte(b, tag) < 0 || put_fixed64(b, t) < 0 ? FAILED : DONE;
        }
    }
    Py_DECREF(v);
    return result;
}

static int put_status(Buf *b, PyObject *status) {
    PyObject *code = NULL, *description = NULL;
    int result = FAILED;
    /* opentelemetry.trace.Status keeps both in attributes its properties return */
    code = PyObject_GetAttr(status, s_status_code_attr);
    if (code == NULL) {
        PyErr_Clear();
        return FALL_BACK;
    }
    description = PyObject_GetAttr(status, s_description_attr);
    if (description == NULL) {
        PyErr_Clear();
        result = FALL_BACK;
        goto done;
    }
    long n = enum_value(code, codes, code_count);
    if (n < 0) {
        result = FALL_BACK;
        goto done;
    }
    const char *desc_s = NULL;
    Py_ssize_t desc_len = 0;
    if (description != Py_None) {
        if (!PyUnicode_CheckExact(description)) {
            result = FALL_BACK;
            goto done;
        }
        desc_s = PyUnicode_AsUTF8AndSize(description, &desc_len);
        if (desc_s == NULL) {
            PyErr_Clear();
            result = FALL_BACK;
            goto done;
        }
    }
    Py_ssize_t body = 0;
    if (desc_len) body += 1 + varint_size((uint64_t)desc_len) + desc_len;
    if (n) body += 1 + varint_size((uint64_t)n);
    if (put_byte(b, 0x7A) < 0 || put_varint(b, (uint64_t)body) < 0) goto done;
    if (desc_len && put_str_field(b, 0x12, desc_s, desc_len) < 0) goto done;
    if (n && (put_byte(b, 0x18) < 0 || put_varint(b, (uint64_t)n) < 0)) goto done;
    result = DONE;
done:
    Py_XDECREF(code);
    Py_XDECREF(description);
    return result;
}

/* A new reference to a span field: a slot of the lean span read at its offset in ``lean``
 * (the offsets, NULL for any other span), else the attribute ``name``. NULL with an
 * exception set if neither is there. */
static PyObject *field(PyObject *span, const Py_ssize_t *lean, int index, PyObject *name) {
    if (lean) {
        PyObject *v = *(PyObject **)((char *)span + lean[index]);
        if (v != NULL) {
            Py_INCREF(v);
            return v;
        }
    }
    return PyObject_GetAttr(span, name);
}

static int encode(Buf *b, PyObject *span) {
    PyObject *context = NULL, *parent = NULL, *name = NULL, *kind = NULL,
             *attributes = NULL, *status = NULL;
    int result = FAILED, r;
    /* The offsets are copied with the type check: Python code runs between field reads
     * (``__bool__`` of is_remote, a status's attributes) and may call configure() again. */
    Py_ssize_t offsets[F_COUNT];
    const Py_ssize_t *lean = NULL;
    if (Py_TYPE(span) == lean_type) {
        memcpy(offsets, lean_offsets, sizeof offsets);
        lean = offsets;
    }
    const Names *n = lean ? &lean_names : &public_names;

    /* What this encoder leaves to Python: events, links, dropped counts (always 0 on a
     * lean span). */
    PyObject **rare[] = {n->events, n->links, &s_dropped_attributes, &s_dropped_events,
                         &s_dropped_links};
    int rare_fields[] = {F_EVENTS, F_LINKS};
    size_t checks = n->check_dropped ? 5 : 2;
    for (size_t i = 0; i < checks; i++) {
        PyObject *v = field(span, i < 2 ? lean : NULL, i < 2 ? rare_fields[i] : 0, *rare[i]);
        if (v == NULL) return FAILED;
        r = truthy(v);
        Py_DECREF(v);
        if (r != 0) return r < 0 ? FAILED : FALL_BACK;
    }
    context = field(span, lean, F_CONTEXT, *n->context);
    if (context == NULL) goto done;
    /* SpanContext is a tuple: (trace_id, span_id, is_remote, flags, state, is_valid) */
    if (!PyTuple_Check(context) || PyTuple_GET_SIZE(context) < 5) {
        result = FALL_BACK;
        goto done;
    }
    PyObject *state = PyTuple_GET_ITEM(context, 4);
    r = state == empty_state ? 0 : truthy(state);
    if (r != 0) {
        result = r < 0 ? FAILED : FALL_BACK;
        goto done;
    }
    if ((r = put_id(b, 0x0A, PyTuple_GET_ITEM(context, 0), 16)) != DONE) {
        result = r;
        goto done;
    }
    if ((r = put_id(b, 0x12, PyTuple_GET_ITEM(context, 1), 8)) != DONE) {
        result = r;
        goto done;
    }
    parent = field(span, lean, F_PARENT, *n->parent);
    if (parent == NULL) goto done;
    int remote = 0;
    if (parent != Py_None) {
        if (!PyTuple_Check(parent) || PyTuple_GET_SIZE(parent) < 3) {
            result = FALL_BACK;
            goto done;
        }
        if ((r = put_id(b, 0x22, PyTuple_GET_ITEM(parent, 1), 8)) != DONE) {
            result = r;
            goto done;
        }
        remote = truthy(PyTuple_GET_ITEM(parent, 2));
        if (remote < 0) goto done;
    }
    name = field(span, lean, F_NAME, *n->name);
    if (name == NULL) goto done;
    if (name != Py_None) {
        Py_ssize_t n;
        const char *s;
        if (!PyUnicode_CheckExact(name) || (s = PyUnicode_AsUTF8AndSize(name, &n)) == NULL) {
            PyErr_Clear();
            result = FALL_BACK;
            goto done;
        }
        if (n && put_str_field(b, 0x2A, s, n) < 0) goto done;
    }
    kind = field(span, lean, F_KIND, *n->kind);
    if (kind == NULL) goto done;
    long k = enum_value(kind, kinds, kind_count);
    if (k < 0) {
        result = FALL_BACK;
        goto done;
    }
    if (put_byte(b, 0x30) < 0 || put_varint(b, (uint64_t)(k + 1)) < 0) goto done;
    if ((r = put_time(b, 0x39, span, lean, F_START, *n->start_time)) != DONE) {
        result = r;
        goto done;
    }
    if ((r = put_time(b, 0x41, span, lean, F_END, *n->end_time)) != DONE) {
        result = r;
        goto done;
    }
    attributes = field(span, lean, F_ATTRIBUTES, *n->attributes);
    if (attributes == NULL) goto done;
    if (attributes != Py_None) {
        if (!PyDict_CheckExact(attributes)) {
            result = FALL_BACK;
            goto done;
        }
        PyObject *key, *value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(attributes, &pos, &key, &value)) {
            if ((r = put_attribute(b, key, value)) != DONE) {
                result = r;
                goto done;
            }
        }
    }
    status = field(span, lean, F_STATUS, *n->status);
    if (status == NULL) goto done;
    if (status != Py_None && (r = put_status(b, status)) != DONE) {
        result = r;
        goto done;
    }
    /* flags: has-is-remote (0x100), is-remote (0x200); fixed32 little-endian */
    unsigned char flags[6] = {0x85, 0x01, 0x00, remote ? 0x03 : 0x01, 0x00, 0x00};
    if (put(b, flags, 6) < 0) goto done;
    result = DONE;
done:
    Py_XDECREF(context);
    Py_XDECREF(parent);
    Py_XDECREF(name);
    Py_XDECREF(kind);
    Py_XDECREF(attributes);
    Py_XDECREF(status);
    return result;
}

static PyObject *encode_span(PyObject *module, PyObject *span) {
    Buf b;
    b.data = b.inline_buf;
    b.len = 0;
    b.cap = sizeof b.inline_buf;
    int r = encode(&b, span);
    PyObject *out = NULL;
    if (r == DONE) {
        out = PyBytes_FromStringAndSize(b.data, b.len);
    } else if (r == FALL_BACK) {
        /* held for the call: the fallback may itself call set_encode_fallback */
        PyObject *fn = fallback;
        if (fn == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "no fallback encoder set");
        } else {
            Py_INCREF(fn);
            out = PyObject_CallOneArg(fn, span);
            Py_DECREF(fn);
        }
    }
    if (b.data != b.inline_buf) PyMem_Free(b.data);
    return out;
}

/* Enum tables (members, or their names) are replaced whole, or not at all. */
static int check_table(PyObject *seq) {
    if (PyTuple_GET_SIZE(seq) > MAX_ENUM) {
        PyErr_SetString(PyExc_TypeError, "expected at most 8 enum members (or names), in value order");
        return -1;
    }
    return 0;
}

/* Puts new references to ``seq``'s items in ``table`` and the entries it held in ``old``
 * (MAX_ENUM of them, NULL or references for the caller to release once every table is set:
 * releasing one may run Python code, which must not find the tables half changed). */
static void swap_table(PyObject *seq, PyObject **table, Py_ssize_t *count, PyObject **old) {
    for (Py_ssize_t i = 0; i < MAX_ENUM; i++) {
        old[i] = table[i];
        table[i] = NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(seq); i++) {
        table[i] = PyTuple_GET_ITEM(seq, i);
        Py_INCREF(table[i]);
    }
    *count = PyTuple_GET_SIZE(seq);
}

static void release(PyObject **old, size_t n) {
    for (size_t i = 0; i < n; i++) Py_XDECREF(old[i]);
}

static PyObject *configure(PyObject *module, PyObject *args) {
    PyObject *type, *kind_members, *code_members, *state;
    if (!PyArg_ParseTuple(args, "O!O!O!O:configure", &PyType_Type, &type, &PyTuple_Type,
                          &kind_members, &PyTuple_Type, &code_members, &state))
        return NULL;
    PyObject **names[F_COUNT] = {&p_context,    &p_parent, &p_name,  &p_kind,
                                 &p_start_time, &p_end_time, &p_attributes, &p_events,
                                 &p_links,      &p_status, &p_resource};
    /* everything is checked before anything changes: a span type with the offsets of
     * another would be read at the wrong places */
    Py_ssize_t offsets[F_COUNT];
    for (int i = 0; i < F_COUNT; i++) {
        PyObject *d = _PyType_Lookup((PyTypeObject *)type, *names[i]);
        /* a slot of this type or a base: a member descriptor of another class set as an
         * attribute (``_name = Other._name``) holds an offset into Other's instances */
        if (d == NULL || Py_TYPE(d) != &PyMemberDescr_Type ||
            ((PyMemberDescrObject *)d)->d_member->type != T_OBJECT_EX ||
            !PyType_IsSubtype((PyTypeObject *)type, PyDescr_TYPE(d))) {
            PyErr_Format(PyExc_TypeError, "%R is not a slot of the span type", *names[i]);
            return NULL;
        }
        offsets[i] = ((PyMemberDescrObject *)d)->d_member->offset;
    }
    if (check_table(kind_members) < 0 || check_table(code_members) < 0) return NULL;
    PyObject *old[2 * MAX_ENUM + 2];
    swap_table(kind_members, kinds, &kind_count, old);
    swap_table(code_members, codes, &code_count, old + MAX_ENUM);
    memcpy(lean_offsets, offsets, sizeof offsets);
    old[2 * MAX_ENUM] = (PyObject *)lean_type;
    Py_INCREF(type);
    lean_type = (PyTypeObject *)type;
    old[2 * MAX_ENUM + 1] = empty_state;
    Py_INCREF(state);
    empty_state = state;
    release(old, sizeof old / sizeof old[0]);
    Py_RETURN_NONE;
}

static PyObject *set_encode_fallback(PyObject *module, PyObject *func) {
    if (!PyCallable_Check(func)) {
        PyErr_SetString(PyExc_TypeError, "the fallback must be callable");
        return NULL;
    }
    Py_INCREF(func);
    Py_XSETREF(fallback, func);
    Py_RETURN_NONE;
}

/* --- store rows ---------------------------------------------------------------------------
 *
 * One finished span as the row telemetry/store.py's ``span_row`` makes, for the spans a
 * message makes: attribute values that are str, bool, int, float or None with str keys,
 * no events, an outcome or no CI result. Every other span goes to ``span_row`` itself
 * (``configure_store``'s fallback); tests/unit/test_span_codec.py compares the two.
 */

static PyObject *row_fallback = NULL, *service_of = NULL, *encode_json_str = NULL;
static PyObject *kind_names[MAX_ENUM], *code_names[MAX_ENUM];
static Py_ssize_t kind_name_count = 0, code_name_count = 0;
static PyObject *key_command, *key_author, *key_guild, *key_outcome, *key_pipeline_result;
static PyObject *last_resource = NULL, *last_service = NULL;

static PyObject *hex_id(PyObject *id, size_t size) {
    unsigned char raw[16];
    char text[32];
    static const char digits[] = "0123456789abcdef";
    if (!PyLong_CheckExact(id)) return NULL;
#if PY_VERSION_HEX >= 0x030D0000
    if (_PyLong_AsByteArray((PyLongObject *)id, raw, size, 0, 0, 1) < 0) {
#else
    if (_PyLong_AsByteArray((PyLongObject *)id, raw, size, 0, 0) < 0) {
#endif
        PyErr_Clear();
        return NULL;
    }
    for (size_t i = 0; i < size; i++) {
        text[2 * i] = digits[raw[i] >> 4];
        text[2 * i + 1] = digits[raw[i] & 15];
    }
    return PyUnicode_FromStringAndSize(text, (Py_ssize_t)(2 * size));
}

/* ``None if value is None else str(value)``: a new reference, NULL on error. */
static PyObject *text_of(PyObject *value) {
    if (value == NULL || value == Py_None) Py_RETURN_NONE;
    if (PyUnicode_CheckExact(value)) {
        Py_INCREF(value);
        return value;
    }
    return PyObject_Str(value);
}

static int put_ascii(Buf *b, PyObject *s) {
    if (!PyUnicode_IS_ASCII(s)) return FALL_BACK;
    return put(b, PyUnicode_DATA(s), PyUnicode_GET_LENGTH(s)) < 0 ? FAILED : DONE;
}

/* ``json.dumps(value)`` of one str, through _json's own ASCII encoder. */
static int put_json_str(Buf *b, PyObject *s) {
    PyObject *fn = encode_json_str; /* held: the call may reconfigure */
    Py_INCREF(fn);
    PyObject *quoted = PyObject_CallOneArg(fn, s);
    Py_DECREF(fn);
    if (quoted == NULL) return FAILED;
    /* ensure_ascii: one byte a character; anything else (another encoder) is Python's */
    int r = PyUnicode_Check(quoted) ? put_ascii(b, quoted) : FALL_BACK;
    Py_DECREF(quoted);
    return r;
}

/* One ``"key": value`` of the attributes' JSON. */
static int put_json_item(Buf *b, PyObject *key, PyObject *value) {
    int r;
    if (!PyUnicode_CheckExact(key)) return FALL_BACK;
    if ((r = put_json_str(b, key)) != DONE) return r;
    if (put(b, ": ", 2) < 0) return FAILED;
    if (value == Py_None) return put(b, "null", 4) < 0 ? FAILED : DONE;
    if (value == Py_True) return put(b, "true", 4) < 0 ? FAILED : DONE;
    if (value == Py_False) return put(b, "false", 5) < 0 ? FAILED : DONE;
    if (PyUnicode_CheckExact(value)) return put_json_str(b, value);
    if (PyLong_CheckExact(value)) {
        PyObject *digits = PyObject_Str(value);
        if (digits == NULL) return FAILED;
        r = put_ascii(b, digits);
        Py_DECREF(digits);
        return r;
    }
    if (PyFloat_CheckExact(value)) {
        double d = PyFloat_AS_DOUBLE(value);
        if (d != d) return put(b, "NaN", 3) < 0 ? FAILED : DONE;
        if (d == Py_HUGE_VAL) return put(b, "Infinity", 8) < 0 ? FAILED : DONE;
        if (d == -Py_HUGE_VAL) return put(b, "-Infinity", 9) < 0 ? FAILED : DONE;
        PyObject *repr = PyObject_Repr(value);
        if (repr == NULL) return FAILED;
        r = put_ascii(b, repr);
        Py_DECREF(repr);
        return r;
    }
    return FALL_BACK; /* sequences, and anything json writes as its str */
}

/* ``json.dumps(attributes, default=str)`` for a dict of str keys and plain values. On DONE
 * every key is an exact str and every value None, a bool or an exact str, int or float. */
static int put_attributes_json(Buf *b, PyObject *attributes) {
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    int first = 1, r;
    if (put_byte(b, '{') < 0) return FAILED;
    while (PyDict_Next(attributes, &pos, &key, &value)) {
        if (!first && put(b, ", ", 2) < 0) return FAILED;
        first = 0;
        /* held: encoding a str is a call, which could change the dict */
        Py_INCREF(key);
        Py_INCREF(value);
        r = put_json_item(b, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (r != DONE) return r;
    }
    return put_byte(b, '}') < 0 ? FAILED : DONE;
}

static int bucket_of(long long duration) {
    double micros = (double)duration / 1000.0;
    if (micros <= 1) return 0;
    return (int)floor(2 * log2(micros));
}

/* A new reference to ``attributes[key]``, None when absent; NULL with an error set. */
static PyObject *get_item(PyObject *attributes, PyObject *key) {
    PyObject *v = PyDict_GetItemWithError(attributes, key);
    if (v == NULL) {
        if (PyErr_Occurred()) return NULL;
        v = Py_None;
    }
    Py_INCREF(v);
    return v;
}

/* The row, or NULL with FALL_BACK in *why (no error set) or FAILED (error set).
 *
 * Every check that can send the span to Python comes before Python code can run (in
 * service_of, is_remote's truth, and the status's attributes, whose code is itself one of
 * the checks), so that code does not run once here and again in the fallback; and every
 * object used across it is held by a reference of its own. */
static PyObject *make_row(PyObject *span, int *why) {
    PyObject *context = NULL, *parent = NULL, *name = NULL, *kind = NULL, *start_obj = NULL,
             *end_obj = NULL, *attributes = NULL, *events = NULL, *status = NULL, *code = NULL,
             *description = NULL, *resource = NULL, *row = NULL, *outcome = NULL,
             *command = NULL, *author = NULL, *guild = NULL;
    PyObject *items[18] = {NULL};
    Buf b;
    b.data = b.inline_buf;
    b.len = 0;
    b.cap = sizeof b.inline_buf;
    *why = FAILED;
    if (Py_TYPE(span) != lean_type || row_fallback == NULL) {
        *why = FALL_BACK;
        goto done;
    }
#define GET(var, index)                                               \
    var = *(PyObject **)((char *)span + lean_offsets[index]);          \
    if (var == NULL) {                                                 \
        *why = FALL_BACK;                                              \
        goto done;                                                     \
    }                                                                  \
    Py_INCREF(var);
    GET(context, F_CONTEXT);
    GET(parent, F_PARENT);
    GET(name, F_NAME);
    GET(kind, F_KIND);
    GET(start_obj, F_START);
    GET(end_obj, F_END);
    GET(attributes, F_ATTRIBUTES);
    GET(events, F_EVENTS);
    GET(status, F_STATUS);
    GET(resource, F_RESOURCE);
#undef GET
    /* SpanContext: (trace_id, span_id, is_remote, trace_flags, trace_state, is_valid) */
    if (!PyDict_CheckExact(attributes) || !PyList_CheckExact(events) ||
        PyList_GET_SIZE(events) != 0 || !PyTuple_Check(context) ||
        PyTuple_GET_SIZE(context) < 5 ||
        (parent != Py_None && (!PyTuple_Check(parent) || PyTuple_GET_SIZE(parent) < 3))) {
        *why = FALL_BACK;
        goto done;
    }
    long k = enum_value(kind, kinds, kind_count);
    if (k < 0 || k >= kind_name_count) {
        *why = FALL_BACK;
        goto done;
    }
    Py_INCREF(kind_names[k]);
    items[4] = kind_names[k];

    long long start = 0, end;
    if (start_obj != Py_None) {
        if (!PyLong_CheckExact(start_obj)) {
            *why = FALL_BACK;
            goto done;
        }
        start = PyLong_AsLongLong(start_obj);
        if (start == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            *why = FALL_BACK;
            goto done;
        }
    }
    if (end_obj == Py_None) {
        end = start;
    } else if (PyLong_CheckExact(end_obj)) {
        end = PyLong_AsLongLong(end_obj);
        if (end == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            *why = FALL_BACK;
            goto done;
        }
        if (end == 0) end = start; /* ``span.end_time or start`` */
    } else {
        *why = FALL_BACK;
        goto done;
    }
    /* A start before 1970 could overflow ``end - start``; past 2**53 ns (104 days) a double
     * no longer holds the duration exactly and the bucket could differ from Python's exact
     * ``duration / 1000``. Both are Python's. */
    if (start < 0) {
        *why = FALL_BACK;
        goto done;
    }
    long long duration = end > start ? end - start : 0;
    if (duration > (1LL << 53)) {
        *why = FALL_BACK;
        goto done;
    }

    int r = put_attributes_json(&b, attributes);
    if (r != DONE) {
        *why = r;
        goto done;
    }
    /* From here every value is None, a bool or an exact str, int or float: looking them up
     * and str() of them run no Python code. */
    if ((outcome = get_item(attributes, key_outcome)) == NULL ||
        (command = get_item(attributes, key_command)) == NULL ||
        (author = get_item(attributes, key_author)) == NULL ||
        (guild = get_item(attributes, key_guild)) == NULL)
        goto done;
    int is_run = PyDict_Contains(attributes, key_outcome);
    if (is_run < 0) goto done;
    if ((items[14] = text_of(outcome)) == NULL) goto done;
    if (items[14] == Py_None || PyUnicode_GET_LENGTH(items[14]) == 0) {
        int has_result = PyDict_Contains(attributes, key_pipeline_result);
        if (has_result != 0) { /* a CI run: span_row says what its result counts as */
            *why = has_result < 0 ? FAILED : FALL_BACK;
            goto done;
        }
        Py_SETREF(items[14], Py_NewRef(Py_None));
    }
    if ((items[11] = text_of(command)) == NULL || (items[12] = text_of(author)) == NULL ||
        (items[13] = text_of(guild)) == NULL)
        goto done;
    if ((items[0] = hex_id(PyTuple_GET_ITEM(context, 0), 16)) == NULL ||
        (items[1] = hex_id(PyTuple_GET_ITEM(context, 1), 8)) == NULL) {
        if (!PyErr_Occurred()) *why = FALL_BACK;
        goto done;
    }
    if (parent == Py_None) {
        items[2] = Py_NewRef(Py_None);
    } else if ((items[2] = hex_id(PyTuple_GET_ITEM(parent, 1), 8)) == NULL) {
        if (!PyErr_Occurred()) *why = FALL_BACK;
        goto done;
    }

    /* Python code may run from here on. */
    code = PyObject_GetAttr(status, s_status_code_attr);
    description = code ? PyObject_GetAttr(status, s_description_attr) : NULL;
    if (code == NULL || description == NULL) {
        PyErr_Clear();
        *why = FALL_BACK;
        goto done;
    }
    long c = enum_value(code, codes, code_count);
    if (c < 0 || c >= code_name_count) {
        *why = FALL_BACK;
        goto done;
    }
    Py_INCREF(code_names[c]);
    items[8] = code_names[c];
    int top = parent == Py_None;
    if (!top) {
        int remote = PyObject_IsTrue(PyTuple_GET_ITEM(parent, 2));
        if (remote < 0) goto done;
        top = remote;
    }
    if (resource == last_resource && last_service != NULL) {
        items[15] = Py_NewRef(last_service);
    } else {
        PyObject *fn = service_of; /* held: the call may reconfigure */
        Py_INCREF(fn);
        items[15] = PyObject_CallOneArg(fn, resource);
        Py_DECREF(fn);
        if (items[15] == NULL) goto done;
        /* Both set before either old one is released: a release may run Python code (a
         * finalizer), which must not find the new resource with the old service. */
        PyObject *old_resource = last_resource, *old_service = last_service;
        last_resource = Py_NewRef(resource);
        last_service = Py_NewRef(items[15]);
        Py_XDECREF(old_resource);
        Py_XDECREF(old_service);
    }
    items[3] = Py_NewRef(name);
    items[5] = PyLong_FromLongLong(start);
    items[6] = PyLong_FromLongLong(duration);
    items[7] = PyLong_FromLong(bucket_of(duration));
    items[9] = Py_NewRef(description);
    items[10] = PyLong_FromLong(top && is_run ? 1 : 0);
    if (items[5] == NULL || items[6] == NULL || items[7] == NULL || items[10] == NULL) goto done;
    items[16] = PyUnicode_New(b.len, 127);
    if (items[16] == NULL) goto done;
    memcpy(PyUnicode_DATA(items[16]), b.data, b.len);
    items[17] = Py_NewRef(Py_None);
    row = PyTuple_New(18);
    if (row == NULL) goto done;
    for (int i = 0; i < 18; i++) {
        PyTuple_SET_ITEM(row, i, items[i]);
        items[i] = NULL;
    }
    *why = DONE;
done:
    for (int i = 0; i < 18; i++) Py_XDECREF(items[i]);
    Py_XDECREF(context);
    Py_XDECREF(parent);
    Py_XDECREF(name);
    Py_XDECREF(kind);
    Py_XDECREF(start_obj);
    Py_XDECREF(end_obj);
    Py_XDECREF(attributes);
    Py_XDECREF(events);
    Py_XDECREF(status);
    Py_XDECREF(code);
    Py_XDECREF(description);
    Py_XDECREF(resource);
    Py_XDECREF(outcome);
    Py_XDECREF(command);
    Py_XDECREF(author);
    Py_XDECREF(guild);
    if (b.data != b.inline_buf) PyMem_Free(b.data);
    return row;
}

static PyObject *store_row(PyObject *module, PyObject *span) {
    int why;
    PyObject *row = make_row(span, &why);
    if (row != NULL || why == FAILED) return row;
    PyObject *fn = row_fallback; /* held: the fallback may reconfigure */
    if (fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure_store was not called");
        return NULL;
    }
    Py_INCREF(fn);
    row = PyObject_CallOneArg(fn, span);
    Py_DECREF(fn);
    return row;
}

static PyObject *configure_store(PyObject *module, PyObject *args) {
    PyObject *fallback_fn, *service_fn, *json_str, *kind_name_tuple, *code_name_tuple;
    PyObject *command, *author, *guild, *outcome, *pipeline_result;
    if (!PyArg_ParseTuple(args, "OOOO!O!UUUUU:configure_store", &fallback_fn, &service_fn,
                          &json_str, &PyTuple_Type, &kind_name_tuple, &PyTuple_Type,
                          &code_name_tuple, &command, &author, &guild, &outcome,
                          &pipeline_result))
        return NULL;
    if (check_table(kind_name_tuple) < 0 || check_table(code_name_tuple) < 0) return NULL;
    PyObject **slots[] = {&row_fallback, &service_of,   &encode_json_str, &key_command,
                          &key_author,   &key_guild,    &key_outcome,     &key_pipeline_result,
                          &last_resource, &last_service};
    PyObject *values[] = {fallback_fn, service_fn, json_str, command, author,
                          guild,       outcome,    pipeline_result, NULL, NULL};
    enum { N = sizeof values / sizeof values[0] };
    PyObject *old[2 * MAX_ENUM + N];
    swap_table(kind_name_tuple, kind_names, &kind_name_count, old);
    swap_table(code_name_tuple, code_names, &code_name_count, old + MAX_ENUM);
    for (size_t i = 0; i < N; i++) {
        old[2 * MAX_ENUM + i] = *slots[i];
        Py_XINCREF(values[i]);
        *slots[i] = values[i];
    }
    release(old, sizeof old / sizeof old[0]);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"encode_span", encode_span, METH_O,
     "The bytes of one OTLP Span message (no tag, no length), as otlp_wire.encode_span."},
    {"store_row", store_row, METH_O,
     "The span store's row for one span, as telemetry.store.span_row makes it."},
    {"configure_store", configure_store, METH_VARARGS,
     "configure_store(fallback, service_of, encode_json_str, kind_names, code_names, "
     "command_key, author_key, guild_key, outcome_key, pipeline_result_key)"},
    {"configure", configure, METH_VARARGS,
     "configure(lean_span_type, span_kinds, status_codes, empty_trace_state)"},
    {"set_encode_fallback", set_encode_fallback, METH_O,
     "The OTLP encoder for the spans encode_span leaves to Python."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "telemetry._span_codec", NULL, -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__span_codec(void) {
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {
        {&s_context, "context"},
        {&s_parent, "parent"},
        {&s_name, "name"},
        {&s_kind, "kind"},
        {&s_start_time, "start_time"},
        {&s_end_time, "end_time"},
        {&s_attributes, "attributes"},
        {&s_dropped_attributes, "dropped_attributes"},
        {&s_events, "events"},
        {&s_dropped_events, "dropped_events"},
        {&s_links, "links"},
        {&s_dropped_links, "dropped_links"},
        {&s_status, "status"},
        {&s_value, "value"},
        {&s_status_code, "status_code"},
        {&s_description, "description"},
        {&p_context, "_context"},
        {&p_parent, "_parent"},
        {&p_name, "_name"},
        {&p_kind, "_kind"},
        {&p_start_time, "_start_time"},
        {&p_end_time, "_end_time"},
        {&p_attributes, "_attributes"},
        {&p_events, "_events"},
        {&p_links, "_links"},
        {&p_status, "_status"},
        {&p_resource, "_resource"},
        {&s_status_code_attr, "_status_code"},
        {&s_description_attr, "_description"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].text);
        if (*names[i].slot == NULL) return NULL;
    }
    return PyModule_Create(&module_def);
}
