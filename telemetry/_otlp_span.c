/* One finished span as the bytes of an OTLP ``Span`` message, in C.
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

static PyObject *fallback = NULL;
/* The lean tracer's span type: its fields are read from the instance (``_context``...),
 * not through the ReadableSpan properties, which cost a descriptor and a call each. */
static PyTypeObject *lean_type = NULL;
static PyObject *s_context, *s_parent, *s_name, *s_kind, *s_start_time, *s_end_time,
    *s_attributes, *s_dropped_attributes, *s_events, *s_dropped_events, *s_links,
    *s_dropped_links, *s_status, *s_value, *s_status_code, *s_description;
static PyObject *p_context, *p_parent, *p_name, *p_kind, *p_start_time, *p_end_time,
    *p_attributes, *p_events, *p_links, *p_status;

typedef struct {
    PyObject **context, **parent, **name, **kind, **start_time, **end_time, **attributes,
        **events, **links, **status;
    int check_dropped;
} Names;

/* The lean span's fields are slots: read at their offsets (set_lean_type finds them). */
enum { F_CONTEXT, F_PARENT, F_NAME, F_KIND, F_START, F_END, F_ATTRIBUTES, F_EVENTS, F_LINKS,
       F_STATUS, F_COUNT };
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
    if (PyLong_CheckExact(v)) return Py_SIZE(v) != 0;
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
    Py_ssize_t cap = b->cap * 2;
    while (cap < b->len + need) cap *= 2;
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

#define RESERVE(b, n) \
    if ((b)->len + (Py_ssize_t)(n) > (b)->cap && grow((b), (n)) < 0) return -1

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

    if (!PyUnicode_Check(key)) return FALL_BACK;
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
    if (!PyLong_Check(id)) return FALL_BACK;
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

static PyObject *field(PyObject *span, int lean, int index, PyObject *name);

static int put_time(Buf *b, unsigned char tag, PyObject *span, int lean, int index,
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
        if (!PyUnicode_Check(description)) {
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

/* A new reference to a span field: a slot of the lean span read at its offset, else the
 * attribute ``name``. NULL with an exception set if neither is there. */
static PyObject *field(PyObject *span, int lean, int index, PyObject *name) {
    if (lean) {
        PyObject *v = *(PyObject **)((char *)span + lean_offsets[index]);
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
    int lean = Py_TYPE(span) == lean_type;
    const Names *n = lean ? &lean_names : &public_names;

    /* What this encoder leaves to Python: events, links, dropped counts (always 0 on a
     * lean span). */
    PyObject **rare[] = {n->events, n->links, &s_dropped_attributes, &s_dropped_events,
                         &s_dropped_links};
    int rare_fields[] = {F_EVENTS, F_LINKS};
    size_t checks = n->check_dropped ? 5 : 2;
    for (size_t i = 0; i < checks; i++) {
        PyObject *v = field(span, lean && i < 2, i < 2 ? rare_fields[i] : 0, *rare[i]);
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
        if (!PyUnicode_Check(name) || (s = PyUnicode_AsUTF8AndSize(name, &n)) == NULL) {
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
        if (fallback == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "no fallback encoder set");
        } else {
            out = PyObject_CallOneArg(fallback, span);
        }
    }
    if (b.data != b.inline_buf) PyMem_Free(b.data);
    return out;
}

static int fill_table(PyObject *seq, PyObject **table, Py_ssize_t *count) {
    if (!PyTuple_Check(seq) || PyTuple_GET_SIZE(seq) > MAX_ENUM) {
        PyErr_SetString(PyExc_TypeError, "expected a tuple of enum members in value order");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(seq); i++) {
        table[i] = PyTuple_GET_ITEM(seq, i);
        Py_INCREF(table[i]);
    }
    *count = PyTuple_GET_SIZE(seq);
    return 0;
}

static PyObject *configure(PyObject *module, PyObject *args) {
    PyObject *func, *type, *kind_members, *code_members, *state;
    if (!PyArg_ParseTuple(args, "OO!O!O!O:configure", &func, &PyType_Type, &type, &PyTuple_Type,
                          &kind_members, &PyTuple_Type, &code_members, &state))
        return NULL;
    if (!PyCallable_Check(func)) {
        PyErr_SetString(PyExc_TypeError, "the fallback must be callable");
        return NULL;
    }
    PyObject **names[F_COUNT] = {&p_context, &p_parent,     &p_name,   &p_kind,  &p_start_time,
                                 &p_end_time, &p_attributes, &p_events, &p_links, &p_status};
    for (int i = 0; i < F_COUNT; i++) {
        PyObject *d = _PyType_Lookup((PyTypeObject *)type, *names[i]);
        if (d == NULL || Py_TYPE(d) != &PyMemberDescr_Type ||
            ((PyMemberDescrObject *)d)->d_member->type != T_OBJECT_EX) {
            PyErr_Format(PyExc_TypeError, "%R is not a slot of the span type", *names[i]);
            return NULL;
        }
        lean_offsets[i] = ((PyMemberDescrObject *)d)->d_member->offset;
    }
    if (fill_table(kind_members, kinds, &kind_count) < 0) return NULL;
    if (fill_table(code_members, codes, &code_count) < 0) return NULL;
    Py_INCREF(func);
    Py_XSETREF(fallback, func);
    Py_INCREF(type);
    Py_XSETREF(lean_type, (PyTypeObject *)type);
    Py_INCREF(state);
    Py_XSETREF(empty_state, state);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"encode_span", encode_span, METH_O,
     "The bytes of one OTLP Span message (no tag, no length), as otlp_wire.encode_span."},
    {"configure", configure, METH_VARARGS,
     "configure(fallback, lean_span_type, span_kinds, status_codes, empty_trace_state)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "telemetry._otlp_span", NULL, -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__otlp_span(void) {
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
        {&s_status_code_attr, "_status_code"},
        {&s_description_attr, "_description"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].text);
        if (*names[i].slot == NULL) return NULL;
    }
    return PyModule_Create(&module_def);
}
