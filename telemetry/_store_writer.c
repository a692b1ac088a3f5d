/* Writes a batch of span rows to SQLite with the GIL released once for the whole batch.
 *
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
 * ``_sqlite3`` extension, so two SQLite copies never share one file), and the
 * connection's handle is the first field of the module's connection object, as
 * in CPython 3.11 to 3.13. Anything else (another Python, a value of a type not
 * below, a closed connection) answers False and the caller uses executemany: the
 * same rows, the same errors.
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
#define SQLITE_CONSTRAINT 19
#define SQLITE_DONE 101
#define SQLITE_STATIC ((void (*)(void *))0)

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000
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
    int (*bind_int64)(sqlite3_stmt *, int, long long);
    int (*bind_double)(sqlite3_stmt *, int, double);
    int (*bind_text)(sqlite3_stmt *, int, const char *, int, void (*)(void *));
    int (*bind_null)(sqlite3_stmt *, int);
    int (*step)(sqlite3_stmt *);
    int (*reset)(sqlite3_stmt *);
    int (*finalize)(sqlite3_stmt *);
    const char *(*errmsg)(sqlite3 *);
} api;

static int ready = 0;
static PyObject *connection_type = NULL, *operational_error = NULL, *integrity_error = NULL;

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

/* Prepare ``sql`` and write every row; no Python object is touched (the GIL is released). */
static int write_all(sqlite3 *db, const char *sql, int sql_len, const Value *values,
                     Py_ssize_t rows, int width, char **error) {
    sqlite3_stmt *stmt = NULL;
    int rc = api.prepare_v2(db, sql, sql_len, &stmt, NULL);
    if (rc == SQLITE_OK && stmt != NULL && api.bind_parameter_count(stmt) != width) {
        api.finalize(stmt);
        return -1; /* the caller's executemany reports the mismatch */
    }
    for (Py_ssize_t r = 0; rc == SQLITE_OK && r < rows; r++) {
        rc = bind(stmt, values + r * width, width);
        if (rc == SQLITE_OK) {
            rc = api.step(stmt);
            rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        }
        api.reset(stmt);
    }
    if (rc != SQLITE_OK) {
        const char *message = api.errmsg(db);
        *error = strdup(message ? message : "unknown error");
    }
    api.finalize(stmt);
    return rc;
}

static PyObject *insert_rows(PyObject *module, PyObject *args) {
    PyObject *conn, *sql, *rows_arg;
    if (!PyArg_ParseTuple(args, "OUO:insert_rows", &conn, &sql, &rows_arg)) return NULL;
#if KNOWN_LAYOUT
    if (!ready || !PyObject_TypeCheck(conn, (PyTypeObject *)connection_type)) Py_RETURN_FALSE;
    sqlite3 *db = ((ConnectionHead *)conn)->db;
    if (db == NULL) Py_RETURN_FALSE; /* closed: executemany says so */
    Py_ssize_t sql_len;
    const char *sql_text = PyUnicode_AsUTF8AndSize(sql, &sql_len);
    if (sql_text == NULL) return NULL;
    if (sql_len > INT_MAX) Py_RETURN_FALSE;
    /* A tuple of the rows holds every value alive while the GIL is released. */
    PyObject *rows = PySequence_Tuple(rows_arg);
    if (rows == NULL) return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(rows);
    if (count == 0) {
        Py_DECREF(rows);
        Py_RETURN_TRUE;
    }
    PyObject *first = PyTuple_GET_ITEM(rows, 0);
    Py_ssize_t width = PyTuple_CheckExact(first) ? PyTuple_GET_SIZE(first) : 0;
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
    if (!ok) {
        PyMem_Free(values);
        Py_DECREF(rows);
        Py_RETURN_FALSE;
    }
    char *error = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = write_all(db, sql_text, (int)sql_len, values, count, (int)width, &error);
    Py_END_ALLOW_THREADS
    PyMem_Free(values);
    Py_DECREF(rows);
    if (rc == -1) Py_RETURN_FALSE;
    if (rc != SQLITE_OK) {
        PyObject *type = (rc & 0xff) == SQLITE_CONSTRAINT ? integrity_error : operational_error;
        PyErr_SetString(type, error ? error : "out of memory");
        free(error);
        return NULL;
    }
    Py_RETURN_TRUE;
#else
    Py_RETURN_FALSE;
#endif
}

static PyObject *configure(PyObject *module, PyObject *args) {
    PyObject *library, *conn_type, *op_error, *int_error;
    if (!PyArg_ParseTuple(args, "OO!O!O!:configure", &library, &PyType_Type, &conn_type,
                          &PyType_Type, &op_error, &PyType_Type, &int_error))
        return NULL;
    const char *path = NULL;
    if (library != Py_None) {
        path = PyUnicode_AsUTF8(library);
        if (path == NULL) return NULL;
    }
    ready = 0;
    if (!KNOWN_LAYOUT) Py_RETURN_FALSE;
    /* The library the loaded _sqlite3 extension uses, never a second copy of SQLite. */
    void *handle = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (handle == NULL) Py_RETURN_FALSE;
    struct {
        void **slot;
        const char *name;
    } symbols[] = {
        {(void **)&api.prepare_v2, "sqlite3_prepare_v2"},
        {(void **)&api.bind_parameter_count, "sqlite3_bind_parameter_count"},
        {(void **)&api.bind_int64, "sqlite3_bind_int64"},
        {(void **)&api.bind_double, "sqlite3_bind_double"},
        {(void **)&api.bind_text, "sqlite3_bind_text"},
        {(void **)&api.bind_null, "sqlite3_bind_null"},
        {(void **)&api.step, "sqlite3_step"},
        {(void **)&api.reset, "sqlite3_reset"},
        {(void **)&api.finalize, "sqlite3_finalize"},
        {(void **)&api.errmsg, "sqlite3_errmsg"},
    };
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
        *symbols[i].slot = dlsym(handle, symbols[i].name);
        if (*symbols[i].slot == NULL) Py_RETURN_FALSE; /* the handle stays open: it is loaded */
    }
    Py_INCREF(conn_type);
    Py_INCREF(op_error);
    Py_INCREF(int_error);
    Py_XSETREF(connection_type, conn_type);
    Py_XSETREF(operational_error, op_error);
    Py_XSETREF(integrity_error, int_error);
    ready = 1;
    Py_RETURN_TRUE;
}

static PyMethodDef methods[] = {
    {"insert_rows", insert_rows, METH_VARARGS,
     "insert_rows(conn, sql, rows) -> bool: True if written, False to use executemany."},
    {"configure", configure, METH_VARARGS,
     "configure(library, Connection, OperationalError, IntegrityError) -> bool: usable here."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_store_writer", NULL, -1, methods,
};

PyMODINIT_FUNC PyInit__store_writer(void) { return PyModule_Create(&module_def); }
