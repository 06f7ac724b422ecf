/* The intake's put in C, for the common case (recorderd/daemon/intake.py).
 *
 * IntakeBase is the base class of recorderd.daemon.intake.Intake where this module was
 * built. It holds the intake's counters as C fields (messages, bytes, high_water, the two
 * bounds and the bytes counted per sample besides its payload, read and written by the
 * Python code as attributes) and references to its
 * Python containers (_lock, _queues, _bytes, _ring, _in_ring, _queue_of_key), which the
 * Python code keeps creating and using as before.
 *
 * put(key, payload, received_at, node=None) does what Intake._put_slow does when the key's
 * queue is known (cached), the payload is bytes or None, the lock is free and the intake
 * has room: it queues the sample under the intake's own lock, exactly as the Python code
 * would. In every other case (a new key, a node given, the lock held by the writer, the
 * intake full: drops, blocking, counting) it calls Intake._put_slow, the Python code, and
 * returns what that returns. So every decision about drops and blocking stays in Python,
 * and both share one lock: a sample is never queued without it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

static PyObject *s_acquire, *s_release, *s_append, *s_put_slow;

typedef struct {
    PyObject_HEAD
    Py_ssize_t max_messages, max_bytes, messages, bytes, high_water, item_overhead;
    PyObject *lock, *queues, *qbytes, *ring, *in_ring, *queue_of_key;
} IntakeBase;

static int IntakeBase_traverse(IntakeBase *self, visitproc visit, void *arg) {
    Py_VISIT(self->lock);
    Py_VISIT(self->queues);
    Py_VISIT(self->qbytes);
    Py_VISIT(self->ring);
    Py_VISIT(self->in_ring);
    Py_VISIT(self->queue_of_key);
    return 0;
}

static int IntakeBase_clear(IntakeBase *self) {
    Py_CLEAR(self->lock);
    Py_CLEAR(self->queues);
    Py_CLEAR(self->qbytes);
    Py_CLEAR(self->ring);
    Py_CLEAR(self->in_ring);
    Py_CLEAR(self->queue_of_key);
    return 0;
}

static void IntakeBase_dealloc(IntakeBase *self) {
    PyObject_GC_UnTrack(self);
    IntakeBase_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Intake._put_slow(*args, **kwargs): the Python code, with the arguments put was given. */
static PyObject *slow(IntakeBase *self, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames) {
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    PyObject *call[8];
    if (nargs + nkw > 7) {
        PyErr_SetString(PyExc_TypeError, "put(key, payload, received_at, node=None)");
        return NULL;
    }
    call[0] = (PyObject *)self;
    for (Py_ssize_t i = 0; i < nargs + nkw; i++) call[i + 1] = args[i];
    return PyObject_VectorcallMethod(s_put_slow, call, (size_t)(nargs + 1), kwnames);
}

/* Release the intake's lock; 0, or -1 with an exception set. */
static int release(IntakeBase *self) {
    PyObject *r = PyObject_CallMethodNoArgs(self->lock, s_release);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

/* Queue the sample; called with the lock held and room checked. 0, or -1 with an
 * exception set: nothing changed, or (only if appending to the ring failed, that is out of
 * memory) the sample queued and counted, its queue joining the ring with its next sample. */
static int queue(IntakeBase *self, Py_ssize_t q, PyObject *qo, PyObject *const *args,
                 Py_ssize_t size) {
    PyObject *dq = PyList_GET_ITEM(self->queues, q);
    Py_ssize_t qsize = PyLong_AsSsize_t(PyList_GET_ITEM(self->qbytes, q));
    if (qsize == -1 && PyErr_Occurred()) return -1;
    PyObject *new_qsize = PyLong_FromSsize_t(qsize + size);
    PyObject *size_o = PyLong_FromSsize_t(size);
    PyObject *item = size_o == NULL ? NULL : PyTuple_Pack(4, args[0], args[1], args[2], size_o);
    Py_XDECREF(size_o);
    PyObject *r = item == NULL || new_qsize == NULL ? NULL : PyObject_CallMethodOneArg(dq, s_append, item);
    Py_XDECREF(item);
    if (r == NULL) {
        Py_XDECREF(new_qsize);
        return -1;
    }
    Py_DECREF(r);
    PyList_SetItem(self->qbytes, q, new_qsize); /* steals it */
    self->bytes += size;
    self->messages += 1;
    if (self->messages > self->high_water) self->high_water = self->messages;
    if (PyList_GET_ITEM(self->in_ring, q) != Py_True) {
        r = PyObject_CallMethodOneArg(self->ring, s_append, qo);
        if (r == NULL) return -1;
        Py_DECREF(r);
        Py_INCREF(Py_True);
        PyList_SetItem(self->in_ring, q, Py_True);
    }
    return 0;
}

static PyObject *IntakeBase_put(IntakeBase *self, PyObject *const *args, size_t nargsf,
                                PyObject *kwnames) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 3 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0))
        return slow(self, args, nargs, kwnames); /* a node given, or a wrong call */
    PyObject *key = args[0], *payload = args[1];
    Py_ssize_t size;
    if (self->lock == NULL || self->queue_of_key == NULL || !PyDict_CheckExact(self->queue_of_key) ||
        self->queues == NULL || !PyList_CheckExact(self->queues) || self->qbytes == NULL ||
        !PyList_CheckExact(self->qbytes) || self->in_ring == NULL ||
        !PyList_CheckExact(self->in_ring) || self->ring == NULL)
        return slow(self, args, nargs, NULL);
    if (payload == Py_None)
        size = self->item_overhead;
    else if (PyBytes_CheckExact(payload))
        size = self->item_overhead + PyBytes_GET_SIZE(payload);
    else
        return slow(self, args, nargs, NULL);
    PyObject *qo = PyDict_GetItemWithError(self->queue_of_key, key); /* borrowed */
    if (qo == NULL) {
        if (PyErr_Occurred()) return NULL;
        return slow(self, args, nargs, NULL);
    }
    Py_ssize_t q = PyLong_AsSsize_t(qo);
    if (q == -1 && PyErr_Occurred()) return NULL;
    if (q < 0 || q >= PyList_GET_SIZE(self->queues) || q >= PyList_GET_SIZE(self->qbytes) ||
        q >= PyList_GET_SIZE(self->in_ring))
        return slow(self, args, nargs, NULL);
    Py_INCREF(qo); /* the cache may change while the lock is taken */
    PyObject *got = PyObject_CallMethodOneArg(self->lock, s_acquire, Py_False);
    if (got == NULL) {
        Py_DECREF(qo);
        return NULL;
    }
    int have = got == Py_True;
    Py_DECREF(got);
    if (!have) { /* the writer is taking: wait for the lock in the Python code */
        Py_DECREF(qo);
        return slow(self, args, nargs, NULL);
    }
    if (self->messages + 1 > self->max_messages || self->bytes + size > self->max_bytes) {
        Py_DECREF(qo);
        if (release(self) < 0) return NULL;
        return slow(self, args, nargs, NULL); /* full: the Python code drops or waits */
    }
    int failed = queue(self, q, qo, args, size);
    Py_DECREF(qo);
    PyObject *exc_type = NULL, *exc_value = NULL, *exc_tb = NULL;
    if (failed) PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    int released = release(self);
    if (failed) {
        PyErr_Restore(exc_type, exc_value, exc_tb);
        return NULL;
    }
    if (released < 0) return NULL;
    Py_RETURN_TRUE;
}

static PyMethodDef IntakeBase_methods[] = {
    {"put", (PyCFunction)(void (*)(void))IntakeBase_put, METH_FASTCALL | METH_KEYWORDS,
     "put(key, payload, received_at, node=None) -> bool: queue one sample (see intake.py)"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef IntakeBase_members[] = {
    {"max_messages", T_PYSSIZET, offsetof(IntakeBase, max_messages), 0, NULL},
    {"max_bytes", T_PYSSIZET, offsetof(IntakeBase, max_bytes), 0, NULL},
    {"messages", T_PYSSIZET, offsetof(IntakeBase, messages), 0, NULL},
    {"bytes", T_PYSSIZET, offsetof(IntakeBase, bytes), 0, NULL},
    {"high_water", T_PYSSIZET, offsetof(IntakeBase, high_water), 0, NULL},
    {"_item_overhead", T_PYSSIZET, offsetof(IntakeBase, item_overhead), 0, NULL},
    {"_lock", T_OBJECT_EX, offsetof(IntakeBase, lock), 0, NULL},
    {"_queues", T_OBJECT_EX, offsetof(IntakeBase, queues), 0, NULL},
    {"_bytes", T_OBJECT_EX, offsetof(IntakeBase, qbytes), 0, NULL},
    {"_ring", T_OBJECT_EX, offsetof(IntakeBase, ring), 0, NULL},
    {"_in_ring", T_OBJECT_EX, offsetof(IntakeBase, in_ring), 0, NULL},
    {"_queue_of_key", T_OBJECT_EX, offsetof(IntakeBase, queue_of_key), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject IntakeBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "recorderd.daemon._fastintake.IntakeBase",
    .tp_doc = "The intake's counters and its put's common case in C (see intake.py).",
    .tp_basicsize = sizeof(IntakeBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)IntakeBase_dealloc,
    .tp_traverse = (traverseproc)IntakeBase_traverse,
    .tp_clear = (inquiry)IntakeBase_clear,
    .tp_methods = IntakeBase_methods,
    .tp_members = IntakeBase_members,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_fastintake",
    .m_doc = "The intake's put in C, for the common case (see intake.py).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__fastintake(void) {
    s_acquire = PyUnicode_InternFromString("acquire");
    s_release = PyUnicode_InternFromString("release");
    s_append = PyUnicode_InternFromString("append");
    s_put_slow = PyUnicode_InternFromString("_put_slow");
    if (!s_acquire || !s_release || !s_append || !s_put_slow) return NULL;
    if (PyType_Ready(&IntakeBaseType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&IntakeBaseType);
    if (PyModule_AddObject(m, "IntakeBase", (PyObject *)&IntakeBaseType) < 0) {
        Py_DECREF(&IntakeBaseType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
