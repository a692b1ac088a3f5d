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
 * the caller began (within a savepoint of its own, so a failed batch leaves that
 * transaction as it was), through the same SQLite library (looked up through the
 * ``_sqlite3`` extension, so two SQLite copies never share one file); the
 * connection's handle is the first field of the module's connection object, as
 * in CPython 3.11 to 3.13. Wherever it cannot be sure to write what executemany
 * would (another Python, a value of a type not below or one with an adapter
 * registered, anything but one statement that writes and returns no rows, no
 * transaction open, a closed connection, a failed batch) it answers False and the
 * caller runs executemany on the same rows, which writes them or raises its own
 * error. Two things executemany does are not done here: the check that the
 * connection is used from the thread that made it, and an executemany override of
 * a Connection subclass; the caller must own the connection (no other thread may
 * use or close it meanwhile). And where SQLite itself rolled the caller's whole
 * transaction back (a full disk, an I/O error), there is nothing left to hand
 * over: it raises sqlite3.OperationalError with SQLite's message.
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
#define SQLITE_DONE 101
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
    int (*exec)(sqlite3 *, const char *, void *, void *, char **);
    int (*get_autocommit)(sqlite3 *);
    const char *(*errmsg)(sqlite3 *);
    int (*libversion_number)(void);
} api;

static int ready = 0;
static PyObject *connection_type = NULL, *operational_error = NULL;
/* sqlite3.adapters, the keys of the types bound here, and the None adapter store.py registers */
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

/* Write every row with the GIL released, inside a savepoint: on an error the batch's rows
 * are undone and the caller's transaction is left as it was. */
static int write_all(sqlite3 *db, sqlite3_stmt *stmt, const Value *values, Py_ssize_t rows,
                     int width, char **error) {
    int rc = api.exec(db, "SAVEPOINT store_writer", NULL, NULL, NULL);
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
        api.exec(db, "ROLLBACK TO store_writer", NULL, NULL, NULL);
    }
    api.exec(db, "RELEASE store_writer", NULL, NULL, NULL);
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

/* Prepared only if it is one statement that writes, returns no rows and takes ``width``
 * values. */
static sqlite3_stmt *prepare(sqlite3 *db, const char *sql, Py_ssize_t len, int width) {
    sqlite3_stmt *stmt = NULL;
    const char *tail = NULL;
    if ((Py_ssize_t)strlen(sql) != len) return NULL; /* a NUL: executemany refuses it */
    if (api.prepare_v2(db, sql, (int)len, &stmt, &tail) != SQLITE_OK || stmt == NULL) {
        if (stmt != NULL) api.finalize(stmt);
        return NULL;
    }
    while (tail != NULL && *tail != '\0' && strchr(" \t\r\n;", *tail) != NULL) tail++;
    if ((tail != NULL && *tail != '\0') || api.column_count(stmt) != 0 ||
        api.stmt_readonly(stmt) || api.bind_parameter_count(stmt) != width) {
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
    sqlite3_stmt *stmt = ok ? prepare(db, sql_text, sql_len, (int)width) : NULL;
    if (stmt == NULL) { /* executemany says what is wrong, or does what is unusual */
        PyMem_Free(values);
        Py_DECREF(rows);
        Py_RETURN_FALSE;
    }
    char *error = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = write_all(db, stmt, values, count, (int)width, &error);
    api.finalize(stmt);
    Py_END_ALLOW_THREADS
    PyMem_Free(values);
    Py_DECREF(rows);
    if (rc == SQLITE_OK) Py_RETURN_TRUE;
    if (!api.get_autocommit(db)) { /* undone to the savepoint: executemany raises its own error */
        free(error);
        Py_RETURN_FALSE;
    }
    /* SQLite rolled the whole transaction back itself (a full disk, an I/O error). */
    PyErr_SetString(operational_error, error ? error : "out of memory");
    free(error);
    return NULL;
#else
    Py_RETURN_FALSE;
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
        {(void **)&api.exec, "sqlite3_exec"},
        {(void **)&api.get_autocommit, "sqlite3_get_autocommit"},
        {(void **)&api.errmsg, "sqlite3_errmsg"},
        {(void **)&api.libversion_number, "sqlite3_libversion_number"},
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
    {"configure", configure, METH_VARARGS,
     "configure(library, Connection, OperationalError, adapters, PrepareProtocol, none_adapter, "
     "sqlite_version_number) -> None if usable here, else why not."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, .m_name = "_store_writer", .m_size = -1, .m_methods = methods,
};

PyMODINIT_FUNC PyInit__store_writer(void) { return PyModule_Create(&module_def); }
