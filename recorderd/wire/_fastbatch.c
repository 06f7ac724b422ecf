/* One pass over a batch of data messages of one key, in C, for the common case of a
 * batch where every message is valid (recorderd/wire/batch.py, decode_batch).
 *
 * decode_valid(payloads, kind, max_elements) checks every message exactly as
 * recorderd.wire.decode does (docs/wire-protocol.md, "Rejections") and, when all of
 * them pass, returns (headers, data, offsets) as bytearrays: the 64-byte headers one
 * after the other, the data elements of all messages joined (4 bytes each, as sent),
 * and the int64 offsets of each message's elements (n + 1 of them). When any message
 * fails any check, or a payload is not a bytes object, it returns None and the caller
 * decodes the batch with numpy, which finds each rejection and its reason. So this file
 * never decides why a message is rejected, only that the batch is all valid.
 *
 * Every read is bounds-checked against the payload's length before it is made; the
 * checks and copies run without the GIL, on a tuple holding a reference to every
 * payload. Little-endian hosts only (the wire format is little-endian); on others the
 * module reports itself unusable (LITTLE_ENDIAN == 0) and is not used.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#define HEADER_SIZE 64
#define PROTOCOL_VERSION 1
#define KIND_SPIKES 1
#define KIND_MEMBRANE 2
#define KIND_WEIGHTS 3

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_LITTLE_ENDIAN 1
#else
#define HOST_LITTLE_ENDIAN 0
#endif

typedef struct {
    const char *p;
    Py_ssize_t len;
    uint64_t elements;
} Msg;

static uint32_t rd_u32(const char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static int64_t rd_i64(const char *p) { int64_t v; memcpy(&v, p, 8); return v; }
static double rd_f64(const char *p) { double v; memcpy(&v, p, 8); return v; }

/* 1 if the message is valid for `kind`, with its element count in m->elements. */
static int check(Msg *m, int kind, uint64_t max_elements) {
    const char *p = m->p;
    if (m->len < HEADER_SIZE) return 0;
    if (memcmp(p, "BRNP", 4) != 0) return 0;
    if ((unsigned char)p[4] != PROTOCOL_VERSION) return 0;
    if ((unsigned char)p[5] != kind) return 0;
    double t = rd_f64(p + 32), dt = rd_f64(p + 40);
    if (!(isfinite(t) && isfinite(dt)) || !(dt > 0.0)) return 0;
    if (rd_i64(p + 24) < 0) return 0;
    uint64_t size = rd_u32(p + 48), n0 = rd_u32(p + 52), n1 = rd_u32(p + 56);
    if (kind == KIND_WEIGHTS) {
        if (n0 == 0 || n1 == 0) return 0;
    } else if (n1 != 1) {
        return 0;
    }
    uint64_t elements = n0 * n1; /* both < 2^32: no overflow */
    if (elements > max_elements || size > max_elements) return 0;
    if ((uint64_t)m->len != HEADER_SIZE + 4 * elements) return 0;
    if (kind == KIND_SPIKES) {
        if (n0 > size) return 0;
        const char *d = p + HEADER_SIZE;
        uint32_t prev = 0;
        for (uint64_t j = 0; j < n0; j++) {
            uint32_t v = rd_u32(d + 4 * j);
            if (j && v <= prev) return 0;
            prev = v;
        }
        if (n0 && prev >= size) return 0;
    } else if (kind == KIND_MEMBRANE) {
        if (n0 != size) return 0;
    }
    m->elements = elements;
    return 1;
}

static PyObject *decode_valid(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *list;
    int kind;
    unsigned long long max_elements;
    if (!PyArg_ParseTuple(args, "O!iK", &PyList_Type, &list, &kind, &max_elements)) return NULL;
    if (!HOST_LITTLE_ENDIAN) Py_RETURN_NONE;
    PyObject *keep = PyList_AsTuple(list); /* holds every payload while the GIL is released */
    if (keep == NULL) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(keep);
    Msg *msgs = PyMem_Malloc(sizeof(Msg) * (size_t)(n ? n : 1));
    if (msgs == NULL) {
        Py_DECREF(keep);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(keep, i);
        if (!PyBytes_CheckExact(item)) {
            PyMem_Free(msgs);
            Py_DECREF(keep);
            Py_RETURN_NONE;
        }
        msgs[i].p = PyBytes_AS_STRING(item);
        msgs[i].len = PyBytes_GET_SIZE(item);
        msgs[i].elements = 0;
    }
    int ok = 1;
    uint64_t total = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n && ok; i++) {
        ok = check(&msgs[i], kind, (uint64_t)max_elements);
        total += msgs[i].elements;
    }
    Py_END_ALLOW_THREADS
    PyObject *headers = NULL, *data = NULL, *offsets = NULL, *out = NULL;
    if (!ok) {
        out = Py_None;
        Py_INCREF(out);
        goto done;
    }
    if ((uint64_t)total > (uint64_t)(PY_SSIZE_T_MAX / 4) - 1) { /* cannot happen in a batch */
        out = Py_None;
        Py_INCREF(out);
        goto done;
    }
    headers = PyByteArray_FromStringAndSize(NULL, n * HEADER_SIZE);
    data = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)total * 4);
    offsets = PyByteArray_FromStringAndSize(NULL, (n + 1) * 8);
    if (headers == NULL || data == NULL || offsets == NULL) goto done;
    {
        char *h = PyByteArray_AS_STRING(headers);
        char *d = PyByteArray_AS_STRING(data);
        char *o = PyByteArray_AS_STRING(offsets);
        Py_BEGIN_ALLOW_THREADS
        int64_t at = 0;
        memcpy(o, &at, 8);
        for (Py_ssize_t i = 0; i < n; i++) {
            memcpy(h + i * HEADER_SIZE, msgs[i].p, HEADER_SIZE);
            size_t bytes = (size_t)msgs[i].elements * 4;
            if (bytes) memcpy(d + at * 4, msgs[i].p + HEADER_SIZE, bytes);
            at += (int64_t)msgs[i].elements;
            memcpy(o + (i + 1) * 8, &at, 8);
        }
        Py_END_ALLOW_THREADS
    }
    out = PyTuple_Pack(3, headers, data, offsets);
done:
    Py_XDECREF(headers);
    Py_XDECREF(data);
    Py_XDECREF(offsets);
    PyMem_Free(msgs);
    Py_DECREF(keep);
    return out;
}

static PyMethodDef methods[] = {
    {"decode_valid", decode_valid, METH_VARARGS,
     "decode_valid(payloads, kind, max_elements) -> (headers, data, offsets) or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_fastbatch",
    .m_doc = "One-pass check of batches of data messages that are all valid (see batch.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__fastbatch(void) {
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "LITTLE_ENDIAN", HOST_LITTLE_ENDIAN) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
