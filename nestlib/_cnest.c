/*
 * nestlib._cnest: the compiled core of nestlib's "native" backend.
 *
 * Written against the raw CPython API (no C++ runtime, no binding library).
 * It does only the success path of the common cases, with exactly the
 * semantics of the Python engine (nestlib/_walk.py, _nodes.py, _spec.py):
 *
 *   - it shares the Python engine's kind cache (``_nodes.KINDS``) and calls
 *     the Python helpers (``classify``, ``children``, ``rebuild`` ...) for
 *     every node it does not handle itself; exact ``list``, ``tuple``,
 *     ``dict``, namedtuples and any mapping's sorted keys are native;
 *   - whenever something is unusual (a mismatch, an exception, nesting deeper
 *     than MAX_DEPTH, which also catches reference cycles) it gives up and
 *     the *whole* call is redone by the Python function passed to init(), which
 *     either succeeds (deep-but-legal input) or raises nestlib's path-bearing
 *     error. Results and exceptions are therefore those of the Python engine.
 *
 * User callbacks (the ``func`` of the map functions) are called only after
 * every structure has been flattened and checked, and never twice: if the
 * final rebuild fails, the Python ``pack_trusted`` redoes only the rebuild
 * with the values already computed.
 *
 * All state is set once by init() and read-only afterwards; every call holds
 * the GIL and keeps strong references to whatever it is walking, so
 * concurrent calls from several threads are safe.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

/* Node kinds: must equal nestlib._nodes' constants (checked by init()). */
enum {
    K_LEAF = 0,
    K_LIST = 1,
    K_TUPLE = 2,
    K_NAMEDTUPLE = 3,
    K_MAPPING = 4,
    K_ATTRS = 5,
    K_SEQUENCE = 6,
    K_VIEW = 7,
    K_PROXY = 8,
    K_COMPOSITE = 9,
    K_CUSTOM = 10,
    K_LAST = 10
};

/* ------------------------------------------------------------------------ */
/* State set by init()                                                       */
/* ------------------------------------------------------------------------ */

static int g_ready = 0;
static int g_max_depth = 1000;

static PyObject *g_kinds;            /* _nodes.KINDS: type -> kind */
static PyObject *g_classify;         /* _nodes.classify(x) -> kind */
static PyObject *g_children;         /* _nodes.children(x, k) -> list */
static PyObject *g_items;            /* _nodes.items(x, k) -> [(key, child)] */
static PyObject *g_rebuild;          /* _nodes.rebuild(x, k, values) */
static PyObject *g_rebuild_mapping;  /* _nodes.rebuild_mapping(x, values, skeys) */
static PyObject *g_unwrap;           /* _nodes.unwrap(x, k) -> (x, k) */
static PyObject *g_attrs_names;      /* _nodes.attrs_names(t) -> [str] */
static PyObject *g_types_compatible; /* _walk.types_compatible(a, ka, b, kb) */
static PyObject *g_check_flat;       /* _walk.check_flat_sequence(x) */
static PyObject *g_nt_size;          /* namedtuple type -> len(_fields) if plain, else -1 */
static PyObject *g_nt_size_cache;    /* type -> int (ours) */
static PyObject *g_ordered_dict;     /* collections.OrderedDict */
static PyObject *g_default_dict;     /* collections.defaultdict */
static PyObject *g_defs;             /* _nodes.DEFS: CUSTOM type -> NodeDef
                                        (flatten, unflatten, flatten_with_keys,
                                        meta_matters, ...) */

/* Python functions that redo a whole call when the native path gives up. */
static PyObject *fb_flatten, *fb_is_nested, *fb_unflatten, *fb_pack_trusted, *fb_same, *fb_map,
    *fb_paths, *fb_map_path, *fb_up_to, *fb_paths_up_to, *fb_spec_slow, *fb_spec_count_error,
    *fb_spec_map_check;

static PyObject *s_fields;      /* interned "_fields" */
static PyObject *s_check_types; /* interned "check_types" */
static PyObject *s_tf_flatten;  /* interned "__tf_flatten__" */
static PyObject *g_empty_tuple; /* () */

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

/* After the native path gave up: 0 if the Python fallback should run (any
 * pending Exception is cleared), -1 if a BaseException that is not an
 * Exception (KeyboardInterrupt, SystemExit, ...) must propagate. */
static int
give_up(void)
{
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return -1;
        PyErr_Clear();
    }
    return 0;
}

static int
not_ready(void)
{
    if (!g_ready) {
        PyErr_SetString(PyExc_RuntimeError, "nestlib._cnest.init() was not called");
        return 1;
    }
    return 0;
}

/* Item i of an exact list or of a tuple (or tuple subclass): borrowed. */
static inline PyObject *
seq_item(PyObject *seq, Py_ssize_t i)
{
    return PyList_CheckExact(seq) ? PyList_GET_ITEM(seq, i) : PyTuple_GET_ITEM(seq, i);
}

/* ``kind_get(type(x), -1)`` without classifying: -1 when the type is not
 * cached yet (the generated Spec code sends such leaves to the slow path),
 * -2 with an exception set on error. */
static int
cached_kind(PyObject *x)
{
    PyTypeObject *t = Py_TYPE(x);
    PyObject *v;
    long k;

    /* KINDS is seeded with these and classify() never changes a cached entry. */
    if (t == &PyList_Type)
        return K_LIST;
    if (t == &PyTuple_Type)
        return K_TUPLE;
    if (t == &PyDict_Type)
        return K_MAPPING;
    if (x == Py_None || t == &PyLong_Type || t == &PyFloat_Type || t == &PyUnicode_Type ||
        t == &PyBool_Type || t == &PyBytes_Type)
        return K_LEAF;
    v = PyDict_GetItemWithError(g_kinds, (PyObject *)t);
    if (v == NULL)
        return PyErr_Occurred() ? -2 : -1;
    k = PyLong_AsLong(v);
    if (k == -1 && PyErr_Occurred())
        return -2;
    return (int)k;
}

/* The kind of x, exactly as ``kind_get(type(x))`` then ``classify(x)``.
 * Returns -1 with an exception set on error. */
static int
kind_of(PyObject *x)
{
    PyObject *v;
    long k;
    int cached = cached_kind(x);

    if (cached >= 0)
        return cached;
    if (cached == -2)
        return -1;
    v = PyObject_CallOneArg(g_classify, x);
    if (v == NULL)
        return -1;
    k = PyLong_AsLong(v);
    Py_DECREF(v);
    if (k < 0 || k > K_LAST) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "nestlib: unknown node kind");
        return -1;
    }
    return (int)k;
}

/* A namedtuple whose items are read as a tuple's (iteration not overridden). */
static inline int
plain_tuple_iter(PyObject *x)
{
    return PyTuple_Check(x) && Py_TYPE(x)->tp_iter == PyTuple_Type.tp_iter;
}

static PyObject *
call_kind_helper(PyObject *fn, PyObject *x, int k)
{
    PyObject *kk = PyLong_FromLong(k), *r;
    if (kk == NULL)
        return NULL;
    r = PyObject_CallFunctionObjArgs(fn, x, kk, NULL);
    Py_DECREF(kk);
    return r;
}

/* ``_nodes.children(x, k)``: must be an exact list. */
static PyObject *
py_children(PyObject *x, int k)
{
    PyObject *r = call_kind_helper(g_children, x, k);
    if (r != NULL && !PyList_CheckExact(r)) {
        Py_DECREF(r);
        return NULL;
    }
    return r;
}

/* CUSTOM nodes (registered types, TF nest protocol): ``DEFS[type(x)]`` read
 * here directly instead of through _nodes' Python helpers. Every function
 * returns NULL, with or without an exception set, when anything is unusual
 * (a type no longer registered, a flatten function returning something
 * else than ``(tuple or list, metadata)``): the Python engine then redoes the
 * call and raises its error. */

/* NodeDef items (see _nodes.NodeDef) */
enum {
    D_FLATTEN,
    D_UNFLATTEN,
    D_KEYS,
    D_META_MATTERS,
    D_LABEL,
    D_CLS,
    D_FIELDS,
    D_PROTOCOL,
    D_TF_UNFLATTEN,
    D_SIZE
};
/* items of D_FIELDS (register_dataclass) */
enum { F_DATA, F_META, F_PLAIN, F_ALL };

/* The last type custom_def looked up and its NodeDef (strong references), so
 * that a structure of many nodes of one type looks its def up once; cleared
 * by forget_defs(), which _registry calls on every (un)registration. */
static PyObject *g_last_def_type, *g_last_def;

/* Borrowed NodeDef of x's type, or NULL. */
static PyObject *
custom_def(PyObject *x)
{
    PyObject *d;
    if ((PyObject *)Py_TYPE(x) == g_last_def_type)
        return g_last_def;
    d = PyDict_GetItemWithError(g_defs, (PyObject *)Py_TYPE(x));
    if (d == NULL || !PyTuple_Check(d) || PyTuple_GET_SIZE(d) < D_SIZE)
        return NULL;
    Py_XSETREF(g_last_def_type, Py_NewRef((PyObject *)Py_TYPE(x)));
    Py_XSETREF(g_last_def, Py_NewRef(d));
    return d;
}

static PyObject *
cn_forget_defs(PyObject *self, PyObject *unused)
{
    Py_CLEAR(g_last_def_type);
    Py_CLEAR(g_last_def);
    Py_RETURN_NONE;
}

/* A new tuple of the attributes ``names`` of x. */
static PyObject *
get_attrs(PyObject *x, PyObject *names)
{
    Py_ssize_t i, n = PyTuple_GET_SIZE(names);
    PyObject *out = PyTuple_New(n);
    if (out == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        PyObject *v = PyObject_GetAttr(x, PyTuple_GET_ITEM(names, i));
        if (v == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, v);
    }
    return out;
}

/* (children, metadata) of a registered dataclass: its fields read here. */
static PyObject *
dataclass_pair(PyObject *x, PyObject *fields)
{
    PyObject *kids = get_attrs(x, PyTuple_GET_ITEM(fields, F_DATA)), *meta, *pair;
    if (kids == NULL)
        return NULL;
    meta = get_attrs(x, PyTuple_GET_ITEM(fields, F_META));
    if (meta == NULL) {
        Py_DECREF(kids);
        return NULL;
    }
    pair = PyTuple_Pack(2, kids, meta);
    Py_DECREF(kids);
    Py_DECREF(meta);
    return pair;
}

/* x.__tf_flatten__(), checked to be (metadata, components) with components
 * an exact tuple, as TF's protocol requires: new reference, or NULL (the
 * Python engine then raises the error that says so). */
static PyObject *
tf_flatten(PyObject *x)
{
    PyObject *r =
        PyObject_VectorcallMethod(s_tf_flatten, &x, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (r != NULL && (!PyTuple_CheckExact(r) || PyTuple_GET_SIZE(r) != 2 ||
                      !PyTuple_CheckExact(PyTuple_GET_ITEM(r, 1))))
        Py_CLEAR(r);
    return r;
}

/* (components, metadata) of a TF-protocol object. */
static PyObject *
protocol_pair(PyObject *x)
{
    PyObject *r = tf_flatten(x), *pair;
    if (r == NULL)
        return NULL;
    pair = PyTuple_Pack(2, PyTuple_GET_ITEM(r, 1), PyTuple_GET_ITEM(r, 0));
    Py_DECREF(r);
    return pair;
}

/* ``def.flatten(x)`` checked: a new exact 2-tuple whose item 0 is an exact
 * tuple or list; its def in *def_out (borrowed). */
static PyObject *
custom_pair(PyObject *x, PyObject **def_out)
{
    PyObject *d = custom_def(x), *pair, *kids;
    if (d == NULL)
        return NULL;
    if (PyTuple_GET_ITEM(d, D_FIELDS) != Py_None)
        pair = dataclass_pair(x, PyTuple_GET_ITEM(d, D_FIELDS));
    else if (PyTuple_GET_ITEM(d, D_PROTOCOL) == Py_True)
        pair = protocol_pair(x);
    else
        pair = PyObject_CallOneArg(PyTuple_GET_ITEM(d, D_FLATTEN), x);
    if (pair == NULL)
        return NULL;
    if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) {
        Py_DECREF(pair);
        return NULL;
    }
    kids = PyTuple_GET_ITEM(pair, 0);
    if (!PyTuple_CheckExact(kids) && !PyList_CheckExact(kids)) {
        Py_DECREF(pair);
        return NULL;
    }
    if (def_out != NULL)
        *def_out = d;
    return pair;
}

/* A plain registered dataclass (see _registry._plain_dataclass) built as its
 * generated __init__ would, without running Python code: the object made,
 * then field names[i] set to values[i] with object.__setattr__. */
static PyObject *
make_plain_dataclass(PyTypeObject *cls, PyObject *names, PyObject *const *values)
{
    Py_ssize_t i;
    PyObject *obj = cls->tp_new(cls, g_empty_tuple, NULL);
    if (obj == NULL)
        return NULL;
    for (i = 0; i < PyTuple_GET_SIZE(names); i++)
        if (PyObject_GenericSetAttr(obj, PyTuple_GET_ITEM(names, i), values[i]) < 0) {
            Py_DECREF(obj);
            return NULL;
        }
    return obj;
}

/* A CUSTOM node of def d rebuilt from meta and vals (an exact list). */
static PyObject *
custom_rebuild(PyObject *d, PyObject *meta, PyObject *vals)
{
    PyObject *fields = PyTuple_GET_ITEM(d, D_FIELDS), *cls = PyTuple_GET_ITEM(d, D_CLS);
    if (fields != Py_None) {
        /* the data fields' values, then the metadata's, in F_ALL's order */
        PyObject *small[16], **argv = small, *r, *all = PyTuple_GET_ITEM(fields, F_ALL);
        Py_ssize_t nd = PyTuple_GET_SIZE(PyTuple_GET_ITEM(fields, F_DATA));
        Py_ssize_t nm = PyTuple_GET_SIZE(PyTuple_GET_ITEM(fields, F_META)), i;
        if (!PyTuple_CheckExact(meta) || PyTuple_GET_SIZE(meta) != nm ||
            PyList_GET_SIZE(vals) != nd || !PyType_Check(cls))
            return NULL;
        if (nd + nm > 16) {
            argv = PyMem_Malloc(sizeof(PyObject *) * (nd + nm));
            if (argv == NULL)
                return PyErr_NoMemory();
        }
        for (i = 0; i < nd; i++)
            argv[i] = PyList_GET_ITEM(vals, i);
        for (i = 0; i < nm; i++)
            argv[nd + i] = PyTuple_GET_ITEM(meta, i);
        if (PyTuple_GET_ITEM(fields, F_PLAIN) == Py_True)
            r = make_plain_dataclass((PyTypeObject *)cls, all, argv);
        else
            r = PyObject_Vectorcall(cls, argv, 0, all);
        if (argv != small)
            PyMem_Free(argv);
        return r;
    }
    if (PyTuple_GET_ITEM(d, D_PROTOCOL) == Py_True) {
        PyObject *args[2], *r;
        args[0] = meta;
        args[1] = PyList_AsTuple(vals);
        if (args[1] == NULL)
            return NULL;
        r = PyObject_Vectorcall(PyTuple_GET_ITEM(d, D_TF_UNFLATTEN), args, 2, NULL);
        Py_DECREF(args[1]);
        return r;
    }
    return PyObject_CallFunctionObjArgs(PyTuple_GET_ITEM(d, D_UNFLATTEN), meta, vals, NULL);
}

/* The children of CUSTOM node x: a new exact tuple or list. */
static PyObject *
custom_children(PyObject *x)
{
    PyObject *d = custom_def(x), *pair, *kids;
    if (d != NULL && PyTuple_GET_ITEM(d, D_FIELDS) != Py_None) /* no metadata needed */
        return get_attrs(x, PyTuple_GET_ITEM(PyTuple_GET_ITEM(d, D_FIELDS), F_DATA));
    if (d != NULL && PyTuple_GET_ITEM(d, D_PROTOCOL) == Py_True) {
        PyObject *r = tf_flatten(x);
        if (r == NULL)
            return NULL;
        kids = Py_NewRef(PyTuple_GET_ITEM(r, 1));
        Py_DECREF(r);
        return kids;
    }
    pair = custom_pair(x, NULL);
    if (pair == NULL)
        return NULL;
    kids = Py_NewRef(PyTuple_GET_ITEM(pair, 0));
    Py_DECREF(pair);
    return kids;
}

/* ``sorted(m)``: the keys of a mapping in flatten order (new list). */
static PyObject *
sorted_keys(PyObject *m)
{
    PyObject *keys = PyDict_CheckExact(m) ? PyDict_Keys(m) : PySequence_List(m);
    if (keys == NULL)
        return NULL;
    if (PyList_Sort(keys) < 0) {
        Py_DECREF(keys);
        return NULL;
    }
    return keys;
}

/* ``[m[key] for key in skeys]`` (new list). */
static PyObject *
values_for(PyObject *m, PyObject *skeys)
{
    Py_ssize_t i, n = PyList_GET_SIZE(skeys);
    int exact = PyDict_CheckExact(m);
    PyObject *vals = PyList_New(n);
    if (vals == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        PyObject *key = PyList_GET_ITEM(skeys, i), *v;
        if (exact) {
            v = PyDict_GetItemWithError(m, key);
            if (v == NULL) {
                Py_DECREF(vals);
                return NULL;
            }
            Py_INCREF(v);
        }
        else {
            v = PyObject_GetItem(m, key);
            if (v == NULL) {
                Py_DECREF(vals);
                return NULL;
            }
        }
        PyList_SET_ITEM(vals, i, v);
    }
    return vals;
}

/* Sorted-key hints. Sorting a big dict's keys is most of the cost of
 * flattening it, and map_structure sorts the same keys up to three times
 * (first structure, other structures, rebuild). When every key is an exact
 * str, or every key an exact int, keys are totally ordered: any dict with an
 * equal key set sorts to an equal list. So a walk records the sorted keys of
 * the dicts it meets, in the order it meets them, and a later walk tries them
 * first; a hint is only used after checking that the dict has exactly those
 * keys (same size, every key found), which the value lookups do anyway. A
 * wrong or stale hint costs a sort, never a wrong result. */
typedef struct {
    PyObject **keys;   /* sorted key lists (strong) or NULL (no hint) */
    Py_ssize_t n, cap; /* recorded */
    Py_ssize_t next;   /* the next one to try */
} hints_t;

static void
hints_free(hints_t *h)
{
    Py_ssize_t i;
    if (h == NULL)
        return;
    for (i = 0; i < h->n; i++)
        Py_XDECREF(h->keys[i]);
    PyMem_Free(h->keys);
    h->keys = NULL;
    h->n = h->cap = h->next = 0;
}

static int
uniform_keys(PyObject *skeys)
{
    Py_ssize_t i, n = PyList_GET_SIZE(skeys);
    PyTypeObject *t;
    if (n == 0)
        return 0;
    t = Py_TYPE(PyList_GET_ITEM(skeys, 0));
    if (t != &PyUnicode_Type && t != &PyLong_Type)
        return 0;
    for (i = 1; i < n; i++)
        if (Py_TYPE(PyList_GET_ITEM(skeys, i)) != t)
            return 0;
    return 1;
}

static int
hints_record(hints_t *h, PyObject *skeys)
{
    if (h->n == h->cap) {
        Py_ssize_t cap = h->cap ? 2 * h->cap : 8;
        PyObject **keys = PyMem_Realloc(h->keys, sizeof(PyObject *) * cap);
        if (keys == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        h->keys = keys;
        h->cap = cap;
    }
    h->keys[h->n++] = uniform_keys(skeys) ? Py_NewRef(skeys) : NULL;
    return 0;
}

/* ``[m[key] for key in skeys]`` for an exact dict m with exactly the keys
 * skeys; NULL without an exception when m's keys differ. */
static PyObject *
values_if_same_keys(PyObject *m, PyObject *skeys)
{
    if (PyDict_GET_SIZE(m) != PyList_GET_SIZE(skeys))
        return NULL;
    return values_for(m, skeys);
}

/* The values of mapping x in sorted-key order (new list), its sorted keys in
 * *skeys_out when not NULL; exact dicts record their keys in rec and try the
 * hint from use first. */
static PyObject *
mapping_seq(PyObject *x, PyObject **skeys_out, hints_t *rec, hints_t *use)
{
    PyObject *skeys = NULL, *vals = NULL;
    int exact = PyDict_CheckExact(x);
    if (exact && use != NULL && use->next < use->n) {
        PyObject *hint = use->keys[use->next++];
        if (hint != NULL) {
            vals = values_if_same_keys(x, hint);
            if (vals != NULL)
                skeys = Py_NewRef(hint);
            else if (PyErr_Occurred())
                return NULL;
        }
    }
    if (vals == NULL) {
        skeys = sorted_keys(x);
        if (skeys == NULL)
            return NULL;
        vals = values_for(x, skeys);
        if (vals == NULL) {
            Py_DECREF(skeys);
            return NULL;
        }
    }
    if (exact && rec != NULL && hints_record(rec, skeys) < 0) {
        Py_DECREF(skeys);
        Py_DECREF(vals);
        return NULL;
    }
    if (skeys_out != NULL)
        *skeys_out = skeys;
    else
        Py_DECREF(skeys);
    return vals;
}

/* The children of node x (kind k) in flatten order, as a new reference to an
 * exact list or a tuple. Exact lists are returned themselves (iterate them
 * re-reading their size, as Python's list iterator does). For mappings the
 * sorted keys go to *skeys_out when it is not NULL. NULL on failure. */
static PyObject *
node_seq_h(PyObject *x, int k, PyObject **skeys_out, hints_t *rec, hints_t *use)
{
    switch (k) {
    case K_LIST:
        if (PyList_CheckExact(x)) {
            Py_INCREF(x);
            return x;
        }
        break;
    case K_TUPLE:
        if (PyTuple_CheckExact(x)) {
            Py_INCREF(x);
            return x;
        }
        break;
    case K_NAMEDTUPLE:
        if (plain_tuple_iter(x)) {
            Py_INCREF(x);
            return x;
        }
        break;
    case K_MAPPING:
        return mapping_seq(x, skeys_out, rec, use);
    case K_CUSTOM:
        return custom_children(x);
    default:
        break;
    }
    return py_children(x, k);
}

static PyObject *
node_seq(PyObject *x, int k, PyObject **skeys_out)
{
    return node_seq_h(x, k, skeys_out, NULL, NULL);
}

/* The number of fields of namedtuple type t when ``t(*values)`` is exactly
 * ``tuple.__new__(t, values)`` (collections.namedtuple's own __new__), else
 * -1; -2 on error. Cached per type. */
static Py_ssize_t
nt_plain_size(PyTypeObject *t)
{
    PyObject *v = PyDict_GetItemWithError(g_nt_size_cache, (PyObject *)t);
    Py_ssize_t n;
    if (v == NULL) {
        if (PyErr_Occurred())
            return -2;
        v = PyObject_CallOneArg(g_nt_size, (PyObject *)t);
        if (v == NULL)
            return -2;
        n = PyLong_AsSsize_t(v);
        if ((n == -1 && PyErr_Occurred()) || PyDict_SetItem(g_nt_size_cache, (PyObject *)t, v) < 0)
            n = -2;
        Py_DECREF(v);
        return n;
    }
    return PyLong_AsSsize_t(v);
}

/* ``tuple.__new__(t, values)`` for a namedtuple type t: a new t of size n
 * whose items the caller sets (it starts zero-filled). */
static PyObject *
nt_alloc(PyTypeObject *t, Py_ssize_t n)
{
    return t->tp_alloc(t, n);
}

/* ``rebuild_mapping(x, values, skeys)`` for an exact dict x: a new dict in
 * x's key order (the keys of x, values by key). Gives up (NULL, maybe with no
 * exception) when x no longer has exactly the keys skeys. */
static PyObject *
dict_rebuild(PyObject *x, PyObject *skeys, PyObject *vals)
{
    Py_ssize_t i, n = PyList_GET_SIZE(skeys);
    PyObject *r;
    if (PyList_GET_SIZE(vals) != n || PyDict_GET_SIZE(x) != n)
        return NULL;
    r = PyDict_Copy(x);
    if (r == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        if (PyDict_SetItem(r, PyList_GET_ITEM(skeys, i), PyList_GET_ITEM(vals, i)) < 0) {
            Py_DECREF(r);
            return NULL;
        }
    }
    if (PyDict_GET_SIZE(r) != n) { /* a key of skeys was missing from x */
        Py_DECREF(r);
        return NULL;
    }
    return r;
}

/* ``types_compatible(a, ka, b, kb)`` for nodes of different types: 1, 0 or -1. */
static int
py_types_compatible(PyObject *a, int ka, PyObject *b, int kb)
{
    PyObject *kka = PyLong_FromLong(ka), *kkb = PyLong_FromLong(kb), *r = NULL;
    int ok = -1;
    if (kka != NULL && kkb != NULL)
        r = PyObject_CallFunctionObjArgs(g_types_compatible, a, kka, b, kkb, NULL);
    Py_XDECREF(kka);
    Py_XDECREF(kkb);
    if (r != NULL) {
        ok = PyObject_IsTrue(r);
        Py_DECREF(r);
    }
    return ok;
}

/* ``unwrap(x, k)``: replaces *x (owned) and *k; -1 on failure. */
static int
py_unwrap(PyObject **x, int *k)
{
    PyObject *r = call_kind_helper(g_unwrap, *x, *k);
    long kk;
    if (r == NULL)
        return -1;
    if (!PyTuple_CheckExact(r) || PyTuple_GET_SIZE(r) != 2) {
        Py_DECREF(r);
        return -1;
    }
    kk = PyLong_AsLong(PyTuple_GET_ITEM(r, 1));
    if (kk < 0 || kk > K_LAST) {
        Py_DECREF(r);
        return -1;
    }
    Py_SETREF(*x, Py_NewRef(PyTuple_GET_ITEM(r, 0)));
    *k = (int)kk;
    Py_DECREF(r);
    return 0;
}

/* Parses (a, b[, check_types]) / check_types= of a fastcall function. */
static int
parse_check_types(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, Py_ssize_t npos,
                  int *check_types)
{
    PyObject *ct = NULL;
    *check_types = 1;
    if (nargs == npos + 1)
        ct = args[npos];
    else if (nargs != npos)
        return -1;
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames)) {
        if (ct != NULL || PyTuple_GET_SIZE(kwnames) != 1 ||
            PyUnicode_Compare(PyTuple_GET_ITEM(kwnames, 0), s_check_types) != 0) {
            PyErr_Clear();
            return -1;
        }
        ct = args[nargs];
    }
    if (ct != NULL) {
        int t = PyObject_IsTrue(ct);
        if (t < 0)
            return -1;
        *check_types = t;
    }
    return 0;
}

/* Calls fallback with the same fastcall arguments. */
static PyObject *
refallback(PyObject *fb, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return PyObject_Vectorcall(fb, args, nargs, kwnames);
}

/* ------------------------------------------------------------------------ */
/* flatten / is_nested                                                       */
/* ------------------------------------------------------------------------ */

static int
flatten_into(PyObject *s, int k, PyObject *out, int depth, hints_t *rec)
{
    PyObject *seq;
    Py_ssize_t i;
    if (depth >= g_max_depth)
        return -1;
    seq = node_seq_h(s, k, NULL, rec, NULL);
    if (seq == NULL)
        return -1;
    for (i = 0; i < Py_SIZE(seq); i++) {
        PyObject *c = seq_item(seq, i);
        int ck, r;
        Py_INCREF(c);
        ck = kind_of(c);
        if (ck == K_LEAF)
            r = PyList_Append(out, c);
        else if (ck > 0)
            r = flatten_into(c, ck, out, depth + 1, rec);
        else
            r = -1;
        Py_DECREF(c);
        if (r < 0) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    return 0;
}

/* flatten(structure) without fallback: NULL when giving up. */
static PyObject *
flatten_native(PyObject *s, hints_t *rec)
{
    PyObject *out;
    int k = kind_of(s);
    if (k < 0)
        return NULL;
    if (k == K_LEAF) {
        out = PyList_New(1);
        if (out != NULL)
            PyList_SET_ITEM(out, 0, Py_NewRef(s));
        return out;
    }
    out = PyList_New(0);
    if (out == NULL)
        return NULL;
    if (flatten_into(s, k, out, 0, rec) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static PyObject *
cn_flatten(PyObject *self, PyObject *s)
{
    PyObject *r;
    if (not_ready())
        return NULL;
    r = flatten_native(s, NULL);
    if (r != NULL || give_up() < 0)
        return r;
    return PyObject_CallOneArg(fb_flatten, s);
}

static PyObject *
cn_is_nested(PyObject *self, PyObject *s)
{
    int k;
    if (not_ready())
        return NULL;
    k = kind_of(s);
    if (k >= 0)
        return PyBool_FromLong(k != K_LEAF);
    if (give_up() < 0)
        return NULL;
    return PyObject_CallOneArg(fb_is_nested, s);
}

/* ------------------------------------------------------------------------ */
/* pack (unflatten_as and the rebuild of the map functions)                  */
/* ------------------------------------------------------------------------ */

typedef struct {
    PyObject *flat; /* exact list or tuple */
    Py_ssize_t pos;
} feed_t;

static PyObject *pack_node(PyObject *s, int k, feed_t *f, int depth, hints_t *use);

/* The value for child c of a node being packed: the next flat value for a
 * leaf, c packed for a node. New reference, or NULL. */
static PyObject *
pack_child(PyObject *c, feed_t *f, int depth, hints_t *use)
{
    int ck = kind_of(c);
    if (ck == K_LEAF)
        return f->pos < Py_SIZE(f->flat) ? Py_NewRef(seq_item(f->flat, f->pos++)) : NULL;
    return ck > 0 ? pack_node(c, ck, f, depth + 1, use) : NULL;
}

/* A TF-protocol object like s packed: one __tf_flatten__ call gives its
 * components and its metadata, the components' values go straight into the
 * tuple __tf_unflatten__ takes. */
static PyObject *
pack_protocol(PyObject *s, PyObject *def, feed_t *f, int depth, hints_t *use)
{
    PyObject *r = tf_flatten(s), *comps, *vals = NULL, *out = NULL, *args[2];
    Py_ssize_t i, n;
    if (r == NULL)
        return NULL;
    comps = PyTuple_GET_ITEM(r, 1);
    n = PyTuple_GET_SIZE(comps);
    vals = PyTuple_New(n);
    if (vals == NULL)
        goto done;
    for (i = 0; i < n; i++) {
        PyObject *v = pack_child(PyTuple_GET_ITEM(comps, i), f, depth, use);
        if (v == NULL)
            goto done;
        PyTuple_SET_ITEM(vals, i, v);
    }
    args[0] = PyTuple_GET_ITEM(r, 0);
    args[1] = vals;
    out = PyObject_Vectorcall(PyTuple_GET_ITEM(def, D_TF_UNFLATTEN), args, 2, NULL);
done:
    Py_XDECREF(vals);
    Py_DECREF(r);
    return out;
}

static PyObject *
pack_node(PyObject *s, int k, feed_t *f, int depth, hints_t *use)
{
    PyObject *skeys = NULL, *seq, *vals = NULL, *r = NULL, *custom = NULL, *def = NULL;
    Py_ssize_t i;

    if (depth >= g_max_depth)
        return NULL;
    if (k == K_CUSTOM) {
        def = custom_def(s);
        if (def == NULL)
            return NULL;
        if (PyTuple_GET_ITEM(def, D_PROTOCOL) == Py_True)
            return pack_protocol(s, def, f, depth, use);
        /* one flatten call gives the children and the metadata to rebuild with */
        custom = custom_pair(s, &def);
        if (custom == NULL)
            return NULL;
        seq = Py_NewRef(PyTuple_GET_ITEM(custom, 0));
    }
    else
        seq = node_seq_h(s, k, k == K_MAPPING ? &skeys : NULL, NULL, use);
    if (seq == NULL)
        return NULL;
    vals = PyList_New(0);
    if (vals == NULL)
        goto done;
    for (i = 0; i < Py_SIZE(seq); i++) {
        PyObject *c = seq_item(seq, i), *v;
        int rc;
        Py_INCREF(c);
        v = pack_child(c, f, depth, use);
        Py_DECREF(c);
        if (v == NULL)
            goto done;
        rc = PyList_Append(vals, v);
        Py_DECREF(v);
        if (rc < 0)
            goto done;
    }
    switch (k) {
    case K_LIST:
        r = Py_NewRef(vals);
        break;
    case K_TUPLE:
        r = PyList_AsTuple(vals);
        break;
    case K_NAMEDTUPLE: {
        Py_ssize_t size = nt_plain_size(Py_TYPE(s));
        if (size < -1)
            break;
        if (size == PyList_GET_SIZE(vals)) {
            Py_ssize_t n = size;
            r = nt_alloc(Py_TYPE(s), n);
            if (r != NULL)
                for (i = 0; i < n; i++)
                    PyTuple_SET_ITEM(r, i, Py_NewRef(PyList_GET_ITEM(vals, i)));
        }
        else {
            PyObject *kk = PyLong_FromLong(k);
            if (kk != NULL)
                r = PyObject_CallFunctionObjArgs(g_rebuild, s, kk, vals, NULL);
            Py_XDECREF(kk);
        }
        break;
    }
    case K_MAPPING:
        if (PyDict_CheckExact(s))
            r = dict_rebuild(s, skeys, vals);
        else
            r = PyObject_CallFunctionObjArgs(g_rebuild_mapping, s, vals, skeys, NULL);
        break;
    case K_CUSTOM:
        r = custom_rebuild(def, PyTuple_GET_ITEM(custom, 1), vals);
        break;
    default: {
        PyObject *kk = PyLong_FromLong(k);
        if (kk != NULL)
            r = PyObject_CallFunctionObjArgs(g_rebuild, s, kk, vals, NULL);
        Py_XDECREF(kk);
        break;
    }
    }
done:
    Py_XDECREF(vals);
    Py_XDECREF(skeys);
    Py_XDECREF(custom);
    Py_DECREF(seq);
    return r;
}

/* pack_trusted(structure, values) (values: exact list). Never gives up: a
 * native failure is redone by the Python pack_trusted with the same values. */
static PyObject *
pack_trusted(PyObject *s, PyObject *values, hints_t *use)
{
    feed_t f = {values, 0};
    PyObject *r = NULL;
    int k = kind_of(s);
    if (k == K_LEAF) {
        if (PyList_GET_SIZE(values) >= 1)
            return Py_NewRef(PyList_GET_ITEM(values, 0));
    }
    else if (k > 0) {
        r = pack_node(s, k, &f, 0, use);
        if (r != NULL && f.pos != PyList_GET_SIZE(values))
            Py_CLEAR(r); /* the structure changed since the values were made */
    }
    if (r != NULL || give_up() < 0)
        return r;
    return PyObject_CallFunctionObjArgs(fb_pack_trusted, s, values, NULL);
}

static PyObject *
cn_pack_trusted(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (not_ready())
        return NULL;
    if (nargs != 2 || !PyList_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "pack_trusted(structure, values: list)");
        return NULL;
    }
    return pack_trusted(args[0], args[1], NULL);
}

static PyObject *
cn_unflatten_as(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *s, *flat, *r = NULL;
    feed_t f;
    int k;
    if (not_ready())
        return NULL;
    if (nargs != 2)
        return PyObject_Vectorcall(fb_unflatten, args, nargs, NULL);
    s = args[0];
    flat = args[1];
    if (PyList_CheckExact(flat) || PyTuple_CheckExact(flat)) {
        Py_INCREF(flat);
    }
    else {
        /* as the Python code: a bad flat_sequence raises from here, and a
         * converted iterator is what the fallback gets (it is consumed) */
        flat = PyObject_CallOneArg(g_check_flat, flat);
        if (flat == NULL)
            return NULL;
        if (!PyList_CheckExact(flat) && !PyTuple_CheckExact(flat))
            goto fallback;
    }
    k = kind_of(s);
    if (k == K_LEAF) {
        if (Py_SIZE(flat) == 1)
            r = Py_NewRef(seq_item(flat, 0));
    }
    else if (k > 0) {
        f.flat = flat;
        f.pos = 0;
        r = pack_node(s, k, &f, 0, NULL);
        if (r != NULL && f.pos != Py_SIZE(flat))
            Py_CLEAR(r);
    }
    if (r != NULL) {
        Py_DECREF(flat);
        return r;
    }
fallback:
    if (give_up() < 0) {
        Py_DECREF(flat);
        return NULL;
    }
    r = PyObject_CallFunctionObjArgs(fb_unflatten, s, flat, NULL);
    Py_DECREF(flat);
    return r;
}

/* ------------------------------------------------------------------------ */
/* same structure (fused with collecting the leaves of either side)          */
/* ------------------------------------------------------------------------ */

/* The children of a node of kind <= NAMEDTUPLE used directly by _same. */
static PyObject *
direct_seq(PyObject *x, int k)
{
    if (k == K_NAMEDTUPLE && !plain_tuple_iter(x))
        return NULL;
    return node_seq(x, k, NULL);
}

/* Python's ``_same(a, b, check_types)``: 0 when it would return True (the
 * leaves of a and b are appended to out_a / out_b when not NULL), -1 when it
 * would not, or when this code cannot tell (the caller falls back). */
static int
same_walk(PyObject *a, PyObject *b, int check_types, PyObject *out_a, PyObject *out_b, int depth,
          hints_t *rec)
{
    int ka, kb, rc = -1;
    PyObject *ca = NULL, *cb = NULL, *ska = NULL, *skb = NULL;
    Py_ssize_t i;

    ka = kind_of(a);
    if (ka < 0)
        return -1;
    kb = kind_of(b);
    if (kb < 0)
        return -1;
    if (ka == K_LEAF || kb == K_LEAF) {
        if (ka != kb)
            return -1;
        if (out_a != NULL && PyList_Append(out_a, a) < 0)
            return -1;
        if (out_b != NULL && PyList_Append(out_b, b) < 0)
            return -1;
        return 0;
    }
    if (depth >= g_max_depth)
        return -1;
    Py_INCREF(a);
    Py_INCREF(b);
    if (ka == K_PROXY && py_unwrap(&a, &ka) < 0)
        goto done;
    if (kb == K_PROXY && py_unwrap(&b, &kb) < 0)
        goto done;
    if (check_types && Py_TYPE(a) != Py_TYPE(b) && py_types_compatible(a, ka, b, kb) != 1)
        goto done;
    if (ka == K_CUSTOM || kb == K_CUSTOM) {
        /* two nodes of one CUSTOM type, with equal metadata where it counts;
         * anything else is the Python engine's to decide */
        PyObject *pa, *pb, *da = NULL;
        int eq = 1;
        if (ka != kb || Py_TYPE(a) != Py_TYPE(b))
            goto done;
        pa = custom_pair(a, &da);
        if (pa == NULL)
            goto done;
        pb = custom_pair(b, NULL);
        if (pb == NULL) {
            Py_DECREF(pa);
            goto done;
        }
        if (PyTuple_GET_ITEM(da, D_META_MATTERS) == Py_True)
            eq = PyObject_RichCompareBool(PyTuple_GET_ITEM(pa, 1), PyTuple_GET_ITEM(pb, 1), Py_EQ);
        if (eq == 1) {
            ca = Py_NewRef(PyTuple_GET_ITEM(pa, 0));
            cb = Py_NewRef(PyTuple_GET_ITEM(pb, 0));
        }
        Py_DECREF(pa);
        Py_DECREF(pb);
    }
    else if (ka == K_MAPPING) {
        ca = mapping_seq(a, &ska, rec, NULL);
        if (ca == NULL)
            goto done;
        if (kb == K_MAPPING) {
            if (PyDict_CheckExact(b) && uniform_keys(ska)) {
                /* b sorts like a when it has a's keys (see hints_t) */
                cb = values_if_same_keys(b, ska);
                if (cb != NULL)
                    skb = Py_NewRef(ska);
                else if (PyErr_Occurred())
                    goto done;
            }
            if (cb == NULL) {
                skb = sorted_keys(b);
                if (skb == NULL || PyList_GET_SIZE(ska) != PyList_GET_SIZE(skb))
                    goto done;
                if (check_types && PyObject_RichCompareBool(ska, skb, Py_EQ) != 1)
                    goto done;
                cb = values_for(b, skb);
            }
        }
        else {
            cb = kb <= K_NAMEDTUPLE ? direct_seq(b, kb) : py_children(b, kb);
        }
    }
    else {
        ca = ka <= K_NAMEDTUPLE ? direct_seq(a, ka) : py_children(a, ka);
        if (ca == NULL)
            goto done;
        cb = kb <= K_NAMEDTUPLE ? direct_seq(b, kb) : node_seq(b, kb, NULL);
    }
    if (ca == NULL || cb == NULL || Py_SIZE(ca) != Py_SIZE(cb))
        goto done;
    for (i = 0; i < Py_SIZE(ca) && i < Py_SIZE(cb); i++) {
        PyObject *x = Py_NewRef(seq_item(ca, i)), *y = Py_NewRef(seq_item(cb, i));
        int r = same_walk(x, y, check_types, out_a, out_b, depth + 1, rec);
        Py_DECREF(x);
        Py_DECREF(y);
        if (r < 0)
            goto done;
    }
    rc = 0;
done:
    Py_XDECREF(ca);
    Py_XDECREF(cb);
    Py_XDECREF(ska);
    Py_XDECREF(skb);
    Py_DECREF(a);
    Py_DECREF(b);
    return rc;
}

static PyObject *
cn_assert_same_structure(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int check_types;
    if (not_ready())
        return NULL;
    if (parse_check_types(args, nargs, kwnames, 2, &check_types) == 0 &&
        same_walk(args[0], args[1], check_types, NULL, NULL, 0, NULL) == 0)
        Py_RETURN_NONE;
    if (give_up() < 0)
        return NULL;
    return refallback(fb_same, args, nargs, kwnames);
}

/* ------------------------------------------------------------------------ */
/* map_structure                                                             */
/* ------------------------------------------------------------------------ */

/* The mapped function raised StopIteration: replace it with a RuntimeError
 * (caused by it) so that it cannot end a caller's loop silently, as Python
 * does for a generator (PEP 479). The Python engine says the same. */
static void
stop_iteration_to_runtime_error(Py_ssize_t leaf)
{
    PyObject *t, *v, *tb, *t2, *v2, *tb2;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb != NULL && v != NULL)
        PyException_SetTraceback(v, tb);
    PyErr_Format(PyExc_RuntimeError,
                 "the mapped function raised StopIteration on leaf number %zd (counting "
                 "from 0); nestlib does not let StopIteration escape, since it would end "
                 "a caller's loop",
                 leaf);
    PyErr_Fetch(&t2, &v2, &tb2);
    PyErr_NormalizeException(&t2, &v2, &tb2);
    if (v2 != NULL && v != NULL) {
        Py_INCREF(v);
        PyException_SetCause(v2, v);   /* steals one reference */
        PyException_SetContext(v2, v); /* steals the other */
        v = NULL;
    }
    PyErr_Restore(t2, v2, tb2);
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
}

/* Calls func over the rows of the columns: row i is (prefix[i]?, cols[0][i],
 * cols[1][i], ...). Returns the list of results, or NULL (func raised). */
static PyObject *
call_rows(PyObject *func, PyObject *prefix, PyObject **cols, Py_ssize_t ncols, Py_ssize_t n)
{
    PyObject *small[8], **argv = small, *out;
    Py_ssize_t i, j, width = ncols + (prefix != NULL);

    out = PyList_New(n);
    if (out == NULL)
        return NULL;
    if (width > 8) {
        argv = PyMem_Malloc(sizeof(PyObject *) * width);
        if (argv == NULL) {
            Py_DECREF(out);
            return PyErr_NoMemory();
        }
    }
    for (i = 0; i < n; i++) {
        PyObject *r;
        Py_ssize_t at = 0;
        if (prefix != NULL)
            argv[at++] = PyList_GET_ITEM(prefix, i);
        for (j = 0; j < ncols; j++)
            argv[at++] = PyList_GET_ITEM(cols[j], i);
        r = PyObject_Vectorcall(func, argv, width, NULL);
        if (r == NULL) {
            if (PyErr_ExceptionMatches(PyExc_StopIteration))
                stop_iteration_to_runtime_error(i);
            Py_DECREF(out);
            out = NULL;
            break;
        }
        PyList_SET_ITEM(out, i, r);
    }
    if (argv != small)
        PyMem_Free(argv);
    return out;
}

/* Parses (func, *structures, check_types=...): returns the number of
 * structures, or -1 when the Python function should handle the call. */
static Py_ssize_t
parse_map_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, int *check_types)
{
    *check_types = 1;
    if (nargs < 2 || !PyCallable_Check(args[0]))
        return -1;
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames)) {
        int t;
        if (PyTuple_GET_SIZE(kwnames) != 1 ||
            PyUnicode_Compare(PyTuple_GET_ITEM(kwnames, 0), s_check_types) != 0) {
            PyErr_Clear();
            return -1;
        }
        t = PyObject_IsTrue(args[nargs]);
        if (t < 0)
            return -1;
        *check_types = t;
    }
    return nargs - 1;
}

/* Flattens structures[0] and checks+flattens the others against it (the
 * Python code checks every structure before flattening any). cols[j] get new
 * lists; 0 on success, -1 when the Python function should redo the call. */
static int
collect_columns(PyObject *const *structures, Py_ssize_t n, int check_types, PyObject **cols,
                int first_column, hints_t *rec)
{
    Py_ssize_t j;
    for (j = 0; j < n; j++)
        cols[j] = NULL;
    if (n == 1) {
        if (!first_column)
            return 0;
        cols[0] = flatten_native(structures[0], rec);
        return cols[0] == NULL ? -1 : 0;
    }
    for (j = 1; j < n; j++) {
        PyObject *out_a = NULL;
        cols[j] = PyList_New(0);
        if (cols[j] == NULL)
            goto fail;
        if (j == 1 && first_column) {
            cols[0] = PyList_New(0);
            if (cols[0] == NULL)
                goto fail;
            out_a = cols[0];
        }
        if (same_walk(structures[0], structures[j], check_types, out_a, cols[j], 0,
                      j == 1 ? rec : NULL) < 0)
            goto fail;
    }
    /* every walk saw the same first structure: equal lengths, unless a
     * hostile object changed it in between (then Python redoes the call) */
    for (j = 2; j < n; j++)
        if (PyList_GET_SIZE(cols[j]) != PyList_GET_SIZE(cols[1]))
            goto fail;
    return 0;
fail:
    for (j = 0; j < n; j++)
        Py_CLEAR(cols[j]);
    return -1;
}

static PyObject *
cn_map_structure(PyObject *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf), n, j;
    PyObject *small[8], **cols = small, *values = NULL, *r = NULL;
    hints_t hints = {NULL, 0, 0, 0};
    int check_types;

    if (not_ready())
        return NULL;
    n = parse_map_args(args, nargs, kwnames, &check_types);
    if (n < 0)
        goto fallback;
    if (n > 8) {
        cols = PyMem_Malloc(sizeof(PyObject *) * n);
        if (cols == NULL)
            return PyErr_NoMemory();
    }
    if (collect_columns(args + 1, n, check_types, cols, 1, &hints) < 0) {
        if (cols != small)
            PyMem_Free(cols);
        goto fallback;
    }
    values = call_rows(args[0], NULL, cols, n, PyList_GET_SIZE(cols[0]));
    for (j = 0; j < n; j++)
        Py_DECREF(cols[j]);
    if (cols != small)
        PyMem_Free(cols);
    if (values != NULL) {
        r = pack_trusted(args[1], values, &hints);
        Py_DECREF(values);
    }
    hints_free(&hints);
    return r;
fallback:
    hints_free(&hints);
    if (give_up() < 0)
        return NULL;
    return refallback(fb_map, args, nargs, kwnames);
}

/* ------------------------------------------------------------------------ */
/* paths                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct {
    PyObject **keys;  /* keys[d]: the key at depth d of the current path */
    PyObject *pairs;  /* [(path, leaf)] or NULL */
    PyObject *paths;  /* [path] or NULL */
    PyObject *leaves; /* [leaf] or NULL */
    hints_t *rec;     /* records the sorted keys of dicts, or NULL */
} paths_t;

static PyObject *
path_tuple(paths_t *P, int n)
{
    PyObject *t = PyTuple_New(n);
    int j;
    if (t == NULL)
        return NULL;
    for (j = 0; j < n; j++)
        PyTuple_SET_ITEM(t, j, Py_NewRef(P->keys[j]));
    return t;
}

static int
emit(paths_t *P, int n, PyObject *leaf)
{
    PyObject *path = path_tuple(P, n);
    int rc = -1;
    if (path == NULL)
        return -1;
    if (P->pairs != NULL) {
        PyObject *pair = PyTuple_Pack(2, path, leaf);
        if (pair != NULL) {
            rc = PyList_Append(P->pairs, pair);
            Py_DECREF(pair);
        }
    }
    else {
        rc = PyList_Append(P->paths, path);
        if (rc == 0 && P->leaves != NULL)
            rc = PyList_Append(P->leaves, leaf);
    }
    Py_DECREF(path);
    return rc;
}

/* The type's ``_fields`` as a tuple or list (new ref), or NULL. */
static PyObject *
nt_fields(PyObject *x)
{
    PyObject *f = PyObject_GetAttr((PyObject *)Py_TYPE(x), s_fields);
    if (f != NULL && !PyTuple_CheckExact(f) && !PyList_CheckExact(f)) {
        Py_DECREF(f);
        return NULL;
    }
    return f;
}

/* Python's ``_paths_into``: keys and children of each node, recursively. */
static int
paths_into(PyObject *s, int k, paths_t *P, int depth)
{
    PyObject *seq = NULL, *keys = NULL, *pairs = NULL;
    Py_ssize_t i, n;
    int rc = -1, int_keys = 0;

    if (depth >= g_max_depth)
        return -1;
    switch (k) {
    case K_LIST:
    case K_TUPLE:
    case K_SEQUENCE:
    case K_VIEW:
        seq = node_seq(s, k, NULL);
        int_keys = 1;
        break;
    case K_MAPPING:
        seq = node_seq_h(s, k, &keys, P->rec, NULL);
        break;
    case K_NAMEDTUPLE:
        keys = nt_fields(s);
        if (keys != NULL)
            seq = node_seq(s, k, NULL);
        break;
    case K_CUSTOM: {
        PyObject *d = custom_def(s), *r;
        if (d == NULL)
            break;
        if (PyTuple_GET_ITEM(d, D_FIELDS) != Py_None) { /* keys: the data field names */
            seq = custom_children(s);
            if (seq != NULL)
                keys = Py_NewRef(PyTuple_GET_ITEM(PyTuple_GET_ITEM(d, D_FIELDS), F_DATA));
            break;
        }
        if (PyTuple_GET_ITEM(d, D_KEYS) == Py_None) {
            seq = custom_children(s);
            int_keys = 1;
            break;
        }
        r = PyObject_CallOneArg(PyTuple_GET_ITEM(d, D_KEYS), s);
        if (r != NULL && PyTuple_CheckExact(r) && PyTuple_GET_SIZE(r) == 2 &&
            (PyTuple_CheckExact(PyTuple_GET_ITEM(r, 0)) ||
             PyList_CheckExact(PyTuple_GET_ITEM(r, 0))))
            pairs = PySequence_List(PyTuple_GET_ITEM(r, 0));
        Py_XDECREF(r);
        break;
    }
    default:
        pairs = call_kind_helper(g_items, s, k);
        if (pairs != NULL && !PyList_CheckExact(pairs))
            Py_CLEAR(pairs);
        break;
    }
    if (seq == NULL && pairs == NULL)
        goto done;
    for (i = 0;; i++) {
        PyObject *key, *c;
        int ck, r;
        if (pairs != NULL) {
            PyObject *pair;
            if (i >= PyList_GET_SIZE(pairs))
                break;
            pair = PyList_GET_ITEM(pairs, i);
            if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2)
                goto done;
            key = Py_NewRef(PyTuple_GET_ITEM(pair, 0));
            c = Py_NewRef(PyTuple_GET_ITEM(pair, 1));
        }
        else {
            n = Py_SIZE(seq);
            if (keys != NULL && Py_SIZE(keys) < n)
                n = Py_SIZE(keys); /* zip() stops at the shorter */
            if (i >= n)
                break;
            key = int_keys ? PyLong_FromSsize_t(i) : Py_NewRef(seq_item(keys, i));
            if (key == NULL)
                goto done;
            c = Py_NewRef(seq_item(seq, i));
        }
        P->keys[depth] = key;
        ck = kind_of(c);
        if (ck == K_LEAF)
            r = emit(P, depth + 1, c);
        else if (ck > 0)
            r = paths_into(c, ck, P, depth + 1);
        else
            r = -1;
        P->keys[depth] = NULL;
        Py_DECREF(key);
        Py_DECREF(c);
        if (r < 0)
            goto done;
    }
    rc = 0;
done:
    Py_XDECREF(seq);
    Py_XDECREF(keys);
    Py_XDECREF(pairs);
    return rc;
}

static int
paths_native(PyObject *s, paths_t *P)
{
    int k, rc;
    k = kind_of(s);
    if (k < 0)
        return -1;
    if (k == K_LEAF)
        return emit(P, 0, s);
    P->keys = PyMem_Malloc(sizeof(PyObject *) * (g_max_depth + 1));
    if (P->keys == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    rc = paths_into(s, k, P, 0);
    PyMem_Free(P->keys);
    P->keys = NULL;
    return rc;
}

static PyObject *
cn_flatten_with_path(PyObject *self, PyObject *s)
{
    paths_t P = {NULL, NULL, NULL, NULL, NULL};
    if (not_ready())
        return NULL;
    P.pairs = PyList_New(0);
    if (P.pairs == NULL)
        return NULL;
    if (paths_native(s, &P) == 0)
        return P.pairs;
    Py_DECREF(P.pairs);
    if (give_up() < 0)
        return NULL;
    return PyObject_CallOneArg(fb_paths, s);
}

static PyObject *
cn_map_structure_with_path(PyObject *self, PyObject *const *args, Py_ssize_t nargsf,
                           PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf), n, j;
    PyObject *small[8], **cols = small, *values = NULL, *r = NULL;
    paths_t P = {NULL, NULL, NULL, NULL, NULL};
    hints_t hints = {NULL, 0, 0, 0};
    int check_types;

    if (not_ready())
        return NULL;
    n = parse_map_args(args, nargs, kwnames, &check_types);
    if (n < 0)
        goto fallback;
    if (n > 8) {
        cols = PyMem_Malloc(sizeof(PyObject *) * n);
        if (cols == NULL)
            return PyErr_NoMemory();
    }
    /* as Python: check every structure, then paths of the first, then leaves */
    if (collect_columns(args + 1, n, check_types, cols, 0, &hints) < 0)
        goto fallback_free;
    if (n == 1)
        P.rec = &hints;
    P.paths = PyList_New(0);
    cols[0] = PyList_New(0);
    P.leaves = cols[0];
    if (P.paths == NULL || cols[0] == NULL || paths_native(args[1], &P) < 0 ||
        (n > 1 && PyList_GET_SIZE(cols[1]) != PyList_GET_SIZE(P.paths))) {
        Py_XDECREF(P.paths);
        for (j = 0; j < n; j++)
            Py_XDECREF(cols[j]);
        goto fallback_free;
    }
    values = call_rows(args[0], P.paths, cols, n, PyList_GET_SIZE(P.paths));
    Py_DECREF(P.paths);
    for (j = 0; j < n; j++)
        Py_DECREF(cols[j]);
    if (cols != small)
        PyMem_Free(cols);
    if (values != NULL) {
        r = pack_trusted(args[1], values, &hints);
        Py_DECREF(values);
    }
    hints_free(&hints);
    return r;
fallback_free:
    if (cols != small)
        PyMem_Free(cols);
fallback:
    hints_free(&hints);
    if (give_up() < 0)
        return NULL;
    return refallback(fb_map_path, args, nargs, kwnames);
}

/* ------------------------------------------------------------------------ */
/* flatten_up_to / flatten_with_path_up_to                                   */
/* ------------------------------------------------------------------------ */

/* Lists, tuples, plain namedtuples and mappings only; any other node, or any
 * pairing of children that is not positional, goes back to Python. */
static int
up_to_walk(PyObject *s, PyObject *d, int check_types, paths_t *P, PyObject *out, int depth)
{
    int ks, kd, rc = -1;
    PyObject *cs = NULL, *cd = NULL, *keys = NULL, *skd = NULL;
    Py_ssize_t i;

    ks = kind_of(s);
    if (ks < 0)
        return -1;
    if (ks == K_LEAF) {
        if (P != NULL)
            return emit(P, depth, d);
        return PyList_Append(out, d);
    }
    if (depth >= g_max_depth)
        return -1;
    kd = kind_of(d);
    if (kd <= K_LEAF || ks > K_MAPPING || kd > K_MAPPING)
        return -1;
    if (check_types && Py_TYPE(s) != Py_TYPE(d)) {
        int inst = PyObject_IsInstance(d, (PyObject *)Py_TYPE(s));
        if (inst < 0)
            return -1;
        if (!inst && py_types_compatible(s, ks, d, kd) != 1)
            return -1;
    }
    if (ks <= K_TUPLE && kd <= K_TUPLE) {
        cs = node_seq(s, ks, NULL);
        cd = node_seq(d, kd, NULL);
    }
    else if (ks == K_NAMEDTUPLE && kd == K_NAMEDTUPLE) {
        PyObject *fd;
        if (!plain_tuple_iter(s) || !plain_tuple_iter(d))
            return -1;
        keys = nt_fields(s);
        fd = nt_fields(d);
        if (keys == NULL || fd == NULL || Py_SIZE(keys) != Py_SIZE(s) ||
            Py_SIZE(fd) != Py_SIZE(d) || Py_SIZE(keys) != Py_SIZE(fd)) {
            Py_XDECREF(fd);
            goto done;
        }
        for (i = 0; i < Py_SIZE(keys); i++) {
            PyObject *x = Py_NewRef(seq_item(keys, i)), *y = Py_NewRef(seq_item(fd, i));
            int eq = PyObject_RichCompareBool(x, y, Py_EQ);
            Py_DECREF(x);
            Py_DECREF(y);
            if (eq != 1) {
                Py_DECREF(fd);
                goto done;
            }
        }
        Py_DECREF(fd);
        cs = Py_NewRef(s);
        cd = Py_NewRef(d);
    }
    else if (ks == K_MAPPING && kd == K_MAPPING) {
        cs = node_seq(s, ks, &keys);
        cd = node_seq(d, kd, &skd);
        if (cs == NULL || cd == NULL || PyObject_RichCompareBool(keys, skd, Py_EQ) != 1)
            goto done;
    }
    else {
        return -1;
    }
    if (cs == NULL || cd == NULL || Py_SIZE(cs) != Py_SIZE(cd))
        goto done;
    for (i = 0; i < Py_SIZE(cs) && i < Py_SIZE(cd); i++) {
        PyObject *x = Py_NewRef(seq_item(cs, i)), *y = Py_NewRef(seq_item(cd, i)), *key = NULL;
        int r = -1;
        if (P != NULL) {
            key = keys != NULL ? Py_NewRef(seq_item(keys, i)) : PyLong_FromSsize_t(i);
            P->keys[depth] = key;
        }
        if (P == NULL || key != NULL)
            r = up_to_walk(x, y, check_types, P, out, depth + 1);
        if (P != NULL)
            P->keys[depth] = NULL;
        Py_XDECREF(key);
        Py_DECREF(x);
        Py_DECREF(y);
        if (r < 0)
            goto done;
    }
    rc = 0;
done:
    Py_XDECREF(cs);
    Py_XDECREF(cd);
    Py_XDECREF(keys);
    Py_XDECREF(skd);
    return rc;
}

static PyObject *
up_to_common(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, int with_paths)
{
    paths_t P = {NULL, NULL, NULL, NULL, NULL};
    PyObject *out = NULL;
    int check_types, ok = 0;

    if (not_ready())
        return NULL;
    if (parse_check_types(args, nargs, kwnames, 2, &check_types) == 0) {
        out = PyList_New(0);
        if (out != NULL) {
            if (with_paths) {
                P.pairs = out;
                P.keys = PyMem_Malloc(sizeof(PyObject *) * (g_max_depth + 1));
                if (P.keys != NULL)
                    ok = up_to_walk(args[0], args[1], check_types, &P, NULL, 0) == 0;
                PyMem_Free(P.keys);
            }
            else {
                ok = up_to_walk(args[0], args[1], check_types, NULL, out, 0) == 0;
            }
        }
    }
    if (ok)
        return out;
    Py_XDECREF(out);
    if (give_up() < 0)
        return NULL;
    return refallback(with_paths ? fb_paths_up_to : fb_up_to, args, nargs, kwnames);
}

static PyObject *
cn_flatten_up_to(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    return up_to_common(args, nargs, kwnames, 0);
}

static PyObject *
cn_flatten_with_path_up_to(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames)
{
    return up_to_common(args, nargs, kwnames, 1);
}

/* ------------------------------------------------------------------------ */
/* SpecCore: a structure compiled into a flat array of nodes                 */
/* ------------------------------------------------------------------------ */

enum { U_LEAF, U_LIST, U_TUPLE, U_NTNEW, U_DICT, U_DICTCALL, U_DDICT, U_GENERIC };
enum { F_NONE, F_LIST, F_TUPLE, F_NT, F_DICT, F_ATTRS };

typedef struct {
    unsigned char umode; /* how unflatten builds it */
    unsigned char fmode; /* how flatten checks and reads it */
    int kind;
    Py_ssize_t nkids;
    PyObject *type;    /* type(node) */
    PyObject *tmpl;    /* U_DICT*: dict with the node's keys in its order;
                              U_GENERIC: the skeleton node itself */
    PyObject *keys;    /* F_DICT / U_DICT*: tuple of sorted keys;
                              F_ATTRS: tuple of field names */
    PyObject *factory; /* U_DDICT: default_factory */
} snode;

typedef struct {
    PyObject_HEAD
    Py_ssize_t nnodes, cap, nleaves;
    snode *nodes;
    int fast_flatten; /* every node has a flatten mode */
    PyObject *skeleton;
} SpecCore;

static PyTypeObject SpecCore_Type;

static snode *
spec_push(SpecCore *sp)
{
    if (sp->nnodes == sp->cap) {
        Py_ssize_t cap = sp->cap ? 2 * sp->cap : 16;
        snode *nodes = PyMem_Realloc(sp->nodes, sizeof(snode) * cap);
        if (nodes == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        sp->nodes = nodes;
        sp->cap = cap;
    }
    memset(&sp->nodes[sp->nnodes], 0, sizeof(snode));
    return &sp->nodes[sp->nnodes++];
}

/* Compiles node x (kind k) and its subtree, in preorder (what _spec's code
 * generation decides, as data). */
static int
spec_compile(SpecCore *sp, PyObject *x, int k, int depth)
{
    Py_ssize_t i;
    snode *nd;
    PyObject *seq, *skeys = NULL, *t = (PyObject *)Py_TYPE(x);

    if (depth > g_max_depth) {
        PyErr_SetString(PyExc_ValueError, "structure too deep for a Spec");
        return -1;
    }
    if (k == K_CUSTOM) {
        /* registered / TF-protocol nodes: the Python Spec's generated code
         * handles them, with its check that their rules are still in force */
        PyErr_SetString(PyExc_TypeError, "a Spec with CUSTOM nodes is built in Python");
        return -1;
    }
    nd = spec_push(sp);
    if (nd == NULL)
        return -1;
    nd->kind = k;
    if (k == K_LEAF) {
        nd->umode = U_LEAF;
        sp->nleaves++;
        return 0;
    }
    nd->type = Py_NewRef(t);
    seq = node_seq(x, k, k == K_MAPPING ? &skeys : NULL);
    if (seq == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "could not read a node of the structure");
        return -1;
    }
    nd->nkids = Py_SIZE(seq);
    nd->umode = U_GENERIC;
    nd->fmode = F_NONE;
    if (k == K_LIST) {
        nd->umode = U_LIST;
        nd->fmode = F_LIST;
    }
    else if (k == K_TUPLE) {
        nd->umode = U_TUPLE;
        nd->fmode = F_TUPLE;
    }
    else if (k == K_NAMEDTUPLE) {
        Py_ssize_t size = nt_plain_size(Py_TYPE(x));
        if (size < -1)
            goto fail;
        if (size == nd->nkids)
            nd->umode = U_NTNEW;
        if (plain_tuple_iter(x))
            nd->fmode = F_NT;
    }
    else if (k == K_MAPPING &&
             (t == (PyObject *)&PyDict_Type || t == g_ordered_dict || t == g_default_dict)) {
        Py_ssize_t pos = 0;
        PyObject *key, *val;
        nd->umode = t == (PyObject *)&PyDict_Type ? U_DICT
                    : t == g_ordered_dict         ? U_DICTCALL
                                                  : U_DDICT;
        nd->fmode = F_DICT;
        nd->keys = PyList_AsTuple(skeys);
        nd->tmpl = PyDict_New();
        if (nd->keys == NULL || nd->tmpl == NULL)
            goto fail;
        while (PyDict_Next(x, &pos, &key, &val)) {
            if (PyDict_SetItem(nd->tmpl, key, Py_None) < 0)
                goto fail;
        }
        if (PyDict_GET_SIZE(nd->tmpl) != nd->nkids) {
            PyErr_SetString(PyExc_RuntimeError, "mapping changed while building a Spec");
            goto fail;
        }
        if (nd->umode == U_DDICT) {
            nd->factory = PyObject_GetAttrString(x, "default_factory");
            if (nd->factory == NULL)
                goto fail;
        }
    }
    else if (k == K_ATTRS) {
        PyObject *names = PyObject_CallOneArg(g_attrs_names, t);
        if (names == NULL)
            goto fail;
        nd->keys = PySequence_Tuple(names);
        Py_DECREF(names);
        if (nd->keys == NULL)
            goto fail;
        if (PyTuple_GET_SIZE(nd->keys) == nd->nkids)
            nd->fmode = F_ATTRS;
    }
    if (nd->umode == U_GENERIC)
        nd->tmpl = Py_NewRef(x);
    if (nd->fmode == F_NONE)
        sp->fast_flatten = 0;
    for (i = 0; i < Py_SIZE(seq); i++) {
        PyObject *c = Py_NewRef(seq_item(seq, i));
        int ck = kind_of(c), r = -1;
        if (ck >= 0)
            r = spec_compile(sp, c, ck, depth + 1);
        Py_DECREF(c);
        if (r < 0)
            goto fail;
    }
    Py_DECREF(seq);
    Py_XDECREF(skeys);
    return 0;
fail:
    Py_DECREF(seq);
    Py_XDECREF(skeys);
    return -1;
}

static void
spec_clear_nodes(SpecCore *sp)
{
    Py_ssize_t i;
    snode *nodes = sp->nodes;
    Py_ssize_t n = sp->nnodes;
    sp->nodes = NULL;
    sp->nnodes = sp->cap = 0;
    sp->fast_flatten = 0;
    for (i = 0; i < n; i++) {
        Py_XDECREF(nodes[i].type);
        Py_XDECREF(nodes[i].tmpl);
        Py_XDECREF(nodes[i].keys);
        Py_XDECREF(nodes[i].factory);
    }
    PyMem_Free(nodes);
}

static int
SpecCore_traverse(SpecCore *sp, visitproc visit, void *arg)
{
    Py_ssize_t i;
    for (i = 0; i < sp->nnodes; i++) {
        Py_VISIT(sp->nodes[i].type);
        Py_VISIT(sp->nodes[i].tmpl);
        Py_VISIT(sp->nodes[i].keys);
        Py_VISIT(sp->nodes[i].factory);
    }
    Py_VISIT(sp->skeleton);
    return 0;
}

static int
SpecCore_clear(SpecCore *sp)
{
    spec_clear_nodes(sp);
    Py_CLEAR(sp->skeleton);
    return 0;
}

static void
SpecCore_dealloc(SpecCore *sp)
{
    PyObject_GC_UnTrack(sp);
    SpecCore_clear(sp);
    Py_TYPE(sp)->tp_free((PyObject *)sp);
}

static PyObject *
SpecCore_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *skeleton;
    SpecCore *sp;
    int k;
    if (not_ready())
        return NULL;
    if (!PyArg_ParseTuple(args, "O:SpecCore", &skeleton))
        return NULL;
    sp = (SpecCore *)type->tp_alloc(type, 0);
    if (sp == NULL)
        return NULL;
    sp->fast_flatten = 1;
    sp->skeleton = Py_NewRef(skeleton);
    k = kind_of(skeleton);
    if (k < 0 || spec_compile(sp, skeleton, k, 0) < 0) {
        Py_DECREF(sp);
        return NULL;
    }
    return (PyObject *)sp;
}

static int
spec_alive(SpecCore *sp)
{
    if (sp->nodes == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Spec was cleared");
        return 0;
    }
    return 1;
}

/* unflatten: builds node *ni from L[*li...] (L: exact list or tuple with
 * enough items, checked by the caller). */
static PyObject *
spec_build(SpecCore *sp, Py_ssize_t *ni, PyObject *L, Py_ssize_t *li)
{
    snode *nd = &sp->nodes[(*ni)++];
    PyObject *r = NULL, *vals = NULL;
    Py_ssize_t i, n = nd->nkids;

    switch (nd->umode) {
    case U_LEAF:
        return Py_NewRef(seq_item(L, (*li)++));
    case U_LIST:
    case U_TUPLE:
    case U_NTNEW:
        r = nd->umode == U_LIST    ? PyList_New(n)
            : nd->umode == U_TUPLE ? PyTuple_New(n)
                                   : nt_alloc((PyTypeObject *)nd->type, n);
        if (r == NULL)
            return NULL;
        for (i = 0; i < n; i++) {
            PyObject *v;
            if (sp->nodes[*ni].umode == U_LEAF) { /* inline the common case */
                (*ni)++;
                v = Py_NewRef(seq_item(L, (*li)++));
            }
            else {
                v = spec_build(sp, ni, L, li);
                if (v == NULL) {
                    Py_DECREF(r);
                    return NULL;
                }
            }
            if (nd->umode == U_LIST)
                PyList_SET_ITEM(r, i, v);
            else
                PyTuple_SET_ITEM(r, i, v);
        }
        return r;
    case U_DICT:
    case U_DICTCALL:
    case U_DDICT: {
        PyObject *body = PyDict_Copy(nd->tmpl);
        if (body == NULL)
            return NULL;
        for (i = 0; i < n; i++) {
            PyObject *v = spec_build(sp, ni, L, li);
            int rc;
            if (v == NULL) {
                Py_DECREF(body);
                return NULL;
            }
            rc = PyDict_SetItem(body, PyTuple_GET_ITEM(nd->keys, i), v);
            Py_DECREF(v);
            if (rc < 0) {
                Py_DECREF(body);
                return NULL;
            }
        }
        if (nd->umode == U_DICT)
            return body;
        if (nd->umode == U_DICTCALL)
            r = PyObject_CallOneArg(nd->type, body);
        else
            r = PyObject_CallFunctionObjArgs(nd->type, nd->factory, body, NULL);
        Py_DECREF(body);
        return r;
    }
    default: { /* U_GENERIC: _nodes.rebuild(skeleton node, kind, values) */
        PyObject *kk;
        vals = PyList_New(n);
        if (vals == NULL)
            return NULL;
        for (i = 0; i < n; i++) {
            PyObject *v = spec_build(sp, ni, L, li);
            if (v == NULL) {
                Py_DECREF(vals);
                return NULL;
            }
            PyList_SET_ITEM(vals, i, v);
        }
        kk = PyLong_FromLong(nd->kind);
        if (kk != NULL)
            r = PyObject_CallFunctionObjArgs(g_rebuild, nd->tmpl, kk, vals, NULL);
        Py_XDECREF(kk);
        Py_DECREF(vals);
        return r;
    }
    }
}

static PyObject *
spec_unflatten_trusted(SpecCore *sp, PyObject *L)
{
    Py_ssize_t ni = 0, li = 0;
    PyObject *r;
    if (!spec_alive(sp))
        return NULL;
    if ((!PyList_CheckExact(L) && !PyTuple_CheckExact(L)) || Py_SIZE(L) < sp->nleaves) {
        PyErr_SetString(PyExc_IndexError, "Spec: too few leaves");
        return NULL;
    }
    r = spec_build(sp, &ni, L, &li);
    if (r == NULL && PyErr_ExceptionMatches(PyExc_Exception)) {
        /* A node type refused its values: the Python pack redoes the build
         * and raises that error with the node's path. */
        PyErr_Clear();
        return PyObject_CallFunctionObjArgs(fb_pack_trusted, sp->skeleton, L, NULL);
    }
    return r;
}

static PyObject *
SpecCore_unflatten(SpecCore *sp, PyObject *leaves)
{
    PyObject *L, *r;
    if (!spec_alive(sp))
        return NULL;
    if (PyList_CheckExact(leaves) || PyTuple_CheckExact(leaves)) {
        L = Py_NewRef(leaves);
    }
    else {
        L = PyObject_CallOneArg(g_check_flat, leaves);
        if (L == NULL)
            return NULL;
        if (!PyList_CheckExact(L) && !PyTuple_CheckExact(L)) {
            Py_DECREF(L);
            PyErr_SetString(PyExc_TypeError, "flat_sequence must be a sequence");
            return NULL;
        }
    }
    if (Py_SIZE(L) != sp->nleaves) {
        PyObject *n = PyLong_FromSsize_t(Py_SIZE(L)), *exc = NULL;
        if (n != NULL)
            exc = PyObject_CallFunctionObjArgs(fb_spec_count_error, sp->skeleton, n, NULL);
        Py_XDECREF(n);
        Py_DECREF(L);
        if (exc != NULL) {
            if (PyExceptionInstance_Check(exc))
                PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            else
                PyErr_SetString(PyExc_SystemError, "count error helper returned a non-exception");
            Py_DECREF(exc);
        }
        return NULL;
    }
    r = spec_unflatten_trusted(sp, L);
    Py_DECREF(L);
    return r;
}

static PyObject *
SpecCore_unflatten_trusted(SpecCore *sp, PyObject *leaves)
{
    return spec_unflatten_trusted(sp, leaves);
}

/* The generated flatten's exception handler: these mean "not this
 * structure", anything else propagates. */
static int
fast_flatten_error_is_mismatch(void)
{
    return PyErr_ExceptionMatches(PyExc_KeyError) || PyErr_ExceptionMatches(PyExc_ValueError) ||
           PyErr_ExceptionMatches(PyExc_TypeError);
}

/* The generated code's leaf test ``kind_get(type(x), -1)``: 0 when x is of a
 * cached leaf type, 1 for "use the slow path", -1 for an error to raise. */
static int
spec_leaf_check(PyObject *x)
{
    int r = cached_kind(x);
    if (r == K_LEAF)
        return 0;
    if (r == -2) {
        if (!fast_flatten_error_is_mismatch())
            return -1;
        PyErr_Clear();
    }
    return 1;
}

/* Fast flatten of x against node *ni: 0 ok, 1 "use the slow path", -1 error. */
static int
spec_flat(SpecCore *sp, Py_ssize_t *ni, PyObject *x, PyObject *out, Py_ssize_t *li)
{
    snode *nd = &sp->nodes[(*ni)++];
    Py_ssize_t i, n = nd->nkids;
    int r;

    switch (nd->fmode) {
    case F_NONE:
        if (nd->umode != U_LEAF)
            return 1;
        r = spec_leaf_check(x);
        if (r == 0)
            PyList_SET_ITEM(out, (*li)++, Py_NewRef(x));
        return r;
    case F_LIST:
        if (!PyList_CheckExact(x) || PyList_GET_SIZE(x) != n)
            return 1;
        break;
    case F_TUPLE:
        if (!PyTuple_CheckExact(x) || PyTuple_GET_SIZE(x) != n)
            return 1;
        break;
    case F_NT:
        if ((PyObject *)Py_TYPE(x) != nd->type || PyTuple_GET_SIZE(x) != n || !plain_tuple_iter(x))
            return 1;
        break;
    case F_DICT:
        if ((PyObject *)Py_TYPE(x) != nd->type || PyDict_GET_SIZE(x) != n)
            return 1;
        for (i = 0; i < n; i++) {
            PyObject *v = PyDict_GetItemWithError(x, PyTuple_GET_ITEM(nd->keys, i));
            if (v == NULL) {
                if (!PyErr_Occurred() || fast_flatten_error_is_mismatch()) {
                    PyErr_Clear();
                    return 1;
                }
                return -1;
            }
            Py_INCREF(v);
            r = spec_flat(sp, ni, v, out, li);
            Py_DECREF(v);
            if (r)
                return r;
        }
        return 0;
    case F_ATTRS:
        if ((PyObject *)Py_TYPE(x) != nd->type)
            return 1;
        for (i = 0; i < n; i++) {
            PyObject *v = PyObject_GetAttr(x, PyTuple_GET_ITEM(nd->keys, i));
            if (v == NULL) {
                if (fast_flatten_error_is_mismatch()) {
                    PyErr_Clear();
                    return 1;
                }
                return -1;
            }
            r = spec_flat(sp, ni, v, out, li);
            Py_DECREF(v);
            if (r)
                return r;
        }
        return 0;
    default:
        return 1;
    }
    /* list, tuple, namedtuple */
    for (i = 0; i < n; i++) {
        PyObject *c;
        if (i >= Py_SIZE(x))
            return 1; /* a list shrank while we read it */
        c = Py_NewRef(seq_item(x, i));
        if (sp->nodes[*ni].umode == U_LEAF) { /* the common case inline */
            (*ni)++;
            r = spec_leaf_check(c);
            if (r == 0) {
                PyList_SET_ITEM(out, (*li)++, c);
                continue;
            }
            Py_DECREF(c);
            return r;
        }
        r = spec_flat(sp, ni, c, out, li);
        Py_DECREF(c);
        if (r)
            return r;
    }
    return 0;
}

/* The slow path of Spec.flatten: assert_same_structure(skeleton, x,
 * check_types=True), then flatten(x); native first, Python on any doubt. */
static PyObject *
spec_slow(SpecCore *sp, PyObject *x)
{
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    if (same_walk(sp->skeleton, x, 1, NULL, out, 0, NULL) == 0)
        return out;
    Py_DECREF(out);
    if (give_up() < 0)
        return NULL;
    return PyObject_CallFunctionObjArgs(fb_spec_slow, sp->skeleton, x, NULL);
}

static PyObject *
spec_flatten(SpecCore *sp, PyObject *x)
{
    PyObject *out;
    Py_ssize_t ni = 0, li = 0;
    int r;
    if (!spec_alive(sp))
        return NULL;
    if (!sp->fast_flatten)
        return spec_slow(sp, x);
    out = PyList_New(sp->nleaves);
    if (out == NULL)
        return NULL;
    r = spec_flat(sp, &ni, x, out, &li);
    if (r == 0 && li == sp->nleaves)
        return out;
    Py_DECREF(out);
    if (r < 0)
        return NULL;
    return spec_slow(sp, x);
}

static PyObject *
SpecCore_flatten(SpecCore *sp, PyObject *x)
{
    return spec_flatten(sp, x);
}

static PyObject *
SpecCore_map(SpecCore *sp, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf), n, j;
    PyObject *small[8], **cols = small, *values, *r;

    if (!spec_alive(sp))
        return NULL;
    if ((kwnames != NULL && PyTuple_GET_SIZE(kwnames)) || nargs < 2 || !PyCallable_Check(args[0])) {
        /* Spec.map's own argument errors: Spec.map(None, ...) raises them */
        PyObject **argv, *res;
        Py_ssize_t nk = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
        argv = PyMem_Malloc(sizeof(PyObject *) * (nargs + nk + 1));
        if (argv == NULL)
            return PyErr_NoMemory();
        argv[0] = Py_None;
        for (j = 0; j < nargs + nk; j++)
            argv[j + 1] = args[j];
        res = PyObject_Vectorcall(fb_spec_map_check, argv, nargs + 1, kwnames);
        PyMem_Free(argv);
        if (res != NULL) {
            Py_DECREF(res);
            PyErr_SetString(PyExc_SystemError, "Spec.map: argument check did not raise");
        }
        return NULL;
    }
    n = nargs - 1;
    if (n > 8) {
        cols = PyMem_Malloc(sizeof(PyObject *) * n);
        if (cols == NULL)
            return PyErr_NoMemory();
    }
    for (j = 0; j < n; j++) {
        cols[j] = spec_flatten(sp, args[j + 1]);
        if (cols[j] == NULL || !PyList_CheckExact(cols[j]) ||
            PyList_GET_SIZE(cols[j]) != sp->nleaves) {
            Py_ssize_t m;
            if (cols[j] != NULL) {
                Py_DECREF(cols[j]);
                PyErr_SetString(PyExc_SystemError, "Spec.flatten gave the wrong number of leaves");
            }
            for (m = 0; m < j; m++)
                Py_DECREF(cols[m]);
            if (cols != small)
                PyMem_Free(cols);
            return NULL;
        }
    }
    values = call_rows(args[0], NULL, cols, n, sp->nleaves);
    for (j = 0; j < n; j++)
        Py_DECREF(cols[j]);
    if (cols != small)
        PyMem_Free(cols);
    if (values == NULL)
        return NULL;
    r = spec_unflatten_trusted(sp, values);
    Py_DECREF(values);
    return r;
}

static PyObject *
SpecCore_get_num_leaves(SpecCore *sp, void *closure)
{
    return PyLong_FromSsize_t(sp->nleaves);
}

static PyObject *
SpecCore_get_fast_flatten(SpecCore *sp, void *closure)
{
    return PyBool_FromLong(sp->fast_flatten);
}

static PyMethodDef SpecCore_methods[] = {
    {"flatten", (PyCFunction)SpecCore_flatten, METH_O,
     "flatten(x): the leaves of x, which must have this structure."},
    {"unflatten", (PyCFunction)SpecCore_unflatten, METH_O,
     "unflatten(leaves): this structure holding leaves."},
    {"unflatten_trusted", (PyCFunction)SpecCore_unflatten_trusted, METH_O,
     "unflatten_trusted(leaves): unflatten without checking the count."},
    {"map", (PyCFunction)(void (*)(void))SpecCore_map, METH_FASTCALL | METH_KEYWORDS,
     "map(func, *structures): func over the leaves, rebuilt as this structure."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef SpecCore_getset[] = {
    {"num_leaves", (getter)SpecCore_get_num_leaves, NULL, "number of leaves", NULL},
    {"fast_flatten", (getter)SpecCore_get_fast_flatten, NULL,
     "whether flatten has a fast path for this structure", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject SpecCore_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "nestlib._cnest.SpecCore",
    .tp_basicsize = sizeof(SpecCore),
    .tp_dealloc = (destructor)SpecCore_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "SpecCore(skeleton): the compiled form of a nestlib.Spec.",
    .tp_traverse = (traverseproc)SpecCore_traverse,
    .tp_clear = (inquiry)SpecCore_clear,
    .tp_methods = SpecCore_methods,
    .tp_getset = SpecCore_getset,
    .tp_new = SpecCore_new,
};

/* ------------------------------------------------------------------------ */
/* init                                                                      */
/* ------------------------------------------------------------------------ */

static int
take(PyObject *config, const char *name, PyObject **slot, int need_callable)
{
    PyObject *v = PyDict_GetItemString(config, name);
    if (v == NULL) {
        PyErr_Format(PyExc_KeyError, "nestlib._cnest.init: missing %s", name);
        return -1;
    }
    if (need_callable && !PyCallable_Check(v)) {
        PyErr_Format(PyExc_TypeError, "nestlib._cnest.init: %s must be callable", name);
        return -1;
    }
    Py_XSETREF(*slot, Py_NewRef(v));
    return 0;
}

static PyObject *
cn_init(PyObject *self, PyObject *config)
{
    static const struct {
        const char *name;
        int value;
    } kinds[] = {
        {"LEAF", K_LEAF},         {"LIST", K_LIST},
        {"TUPLE", K_TUPLE},       {"NAMEDTUPLE", K_NAMEDTUPLE},
        {"MAPPING", K_MAPPING},   {"ATTRS", K_ATTRS},
        {"SEQUENCE", K_SEQUENCE}, {"VIEW", K_VIEW},
        {"PROXY", K_PROXY},       {"COMPOSITE", K_COMPOSITE},
        {"CUSTOM", K_CUSTOM},
    };
    PyObject *v, *kind_values;
    long depth;
    size_t i;

    if (!PyDict_Check(config)) {
        PyErr_SetString(PyExc_TypeError, "init(config: dict)");
        return NULL;
    }
    kind_values = PyDict_GetItemString(config, "kind_values");
    if (kind_values == NULL || !PyDict_Check(kind_values)) {
        PyErr_SetString(PyExc_TypeError, "init: kind_values must be a dict");
        return NULL;
    }
    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        PyObject *kv = PyDict_GetItemString(kind_values, kinds[i].name);
        if (kv == NULL || PyLong_AsLong(kv) != kinds[i].value) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "nestlib._cnest was built for a different _nodes.%s",
                         kinds[i].name);
            return NULL;
        }
    }
    v = PyDict_GetItemString(config, "kinds");
    if (v == NULL || !PyDict_CheckExact(v)) {
        PyErr_SetString(PyExc_TypeError, "init: kinds must be a dict");
        return NULL;
    }
    v = PyDict_GetItemString(config, "max_depth");
    depth = v ? PyLong_AsLong(v) : -1;
    if (depth < 1 || depth > 100000) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "init: max_depth must be a positive int");
        return NULL;
    }
    g_ready = 0;
    if (take(config, "kinds", &g_kinds, 0) < 0 || take(config, "defs", &g_defs, 0) < 0 ||
        take(config, "classify", &g_classify, 1) < 0 ||
        take(config, "children", &g_children, 1) < 0 || take(config, "items", &g_items, 1) < 0 ||
        take(config, "rebuild", &g_rebuild, 1) < 0 ||
        take(config, "rebuild_mapping", &g_rebuild_mapping, 1) < 0 ||
        take(config, "unwrap", &g_unwrap, 1) < 0 ||
        take(config, "attrs_names", &g_attrs_names, 1) < 0 ||
        take(config, "types_compatible", &g_types_compatible, 1) < 0 ||
        take(config, "check_flat_sequence", &g_check_flat, 1) < 0 ||
        take(config, "plain_namedtuple_size", &g_nt_size, 1) < 0 ||
        take(config, "OrderedDict", &g_ordered_dict, 1) < 0 ||
        take(config, "defaultdict", &g_default_dict, 1) < 0 ||
        take(config, "fb_flatten", &fb_flatten, 1) < 0 ||
        take(config, "fb_is_nested", &fb_is_nested, 1) < 0 ||
        take(config, "fb_unflatten_as", &fb_unflatten, 1) < 0 ||
        take(config, "fb_pack_trusted", &fb_pack_trusted, 1) < 0 ||
        take(config, "fb_assert_same_structure", &fb_same, 1) < 0 ||
        take(config, "fb_map_structure", &fb_map, 1) < 0 ||
        take(config, "fb_flatten_with_path", &fb_paths, 1) < 0 ||
        take(config, "fb_map_structure_with_path", &fb_map_path, 1) < 0 ||
        take(config, "fb_flatten_up_to", &fb_up_to, 1) < 0 ||
        take(config, "fb_flatten_with_path_up_to", &fb_paths_up_to, 1) < 0 ||
        take(config, "fb_spec_slow_flatten", &fb_spec_slow, 1) < 0 ||
        take(config, "fb_spec_count_error", &fb_spec_count_error, 1) < 0 ||
        take(config, "fb_spec_map_check", &fb_spec_map_check, 1) < 0)
        return NULL;
    Py_XSETREF(g_nt_size_cache, PyDict_New());
    if (g_nt_size_cache == NULL)
        return NULL;
    g_max_depth = (int)depth;
    g_ready = 1;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------ */
/* module                                                                    */
/* ------------------------------------------------------------------------ */

/* make_plain(cls, names, *values): a plain registered dataclass (see
 * _registry._plain_dataclass) built as its generated __init__ would, for the
 * generated code of Specs. */
static PyObject *
cn_make_plain(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2 || !PyType_Check(args[0]) || !PyTuple_CheckExact(args[1]) ||
        PyTuple_GET_SIZE(args[1]) != nargs - 2) {
        PyErr_SetString(PyExc_TypeError, "make_plain(cls, names, *values)");
        return NULL;
    }
    return make_plain_dataclass((PyTypeObject *)args[0], args[1], args + 2);
}

static PyMethodDef cnest_methods[] = {
    {"forget_defs", (PyCFunction)cn_forget_defs, METH_NOARGS,
     "forget_defs(): drops the remembered NodeDef (called on every (un)registration)."},
    {"make_plain", (PyCFunction)(void (*)(void))cn_make_plain, METH_FASTCALL,
     "make_plain(cls, names, *values): a plain registered dataclass, built without __init__."},
    {"init", (PyCFunction)cn_init, METH_O,
     "init(config): wires the core to nestlib's Python engine."},
    {"flatten", (PyCFunction)cn_flatten, METH_O, "flatten(structure)"},
    {"is_nested", (PyCFunction)cn_is_nested, METH_O, "is_nested(structure)"},
    {"unflatten_as", (PyCFunction)(void (*)(void))cn_unflatten_as, METH_FASTCALL,
     "unflatten_as(structure, flat_sequence)"},
    {"pack_trusted", (PyCFunction)(void (*)(void))cn_pack_trusted, METH_FASTCALL,
     "pack_trusted(structure, values)"},
    {"assert_same_structure", (PyCFunction)(void (*)(void))cn_assert_same_structure,
     METH_FASTCALL | METH_KEYWORDS, "assert_same_structure(a, b, check_types=True)"},
    {"map_structure", (PyCFunction)(void (*)(void))cn_map_structure, METH_FASTCALL | METH_KEYWORDS,
     "map_structure(func, *structures, check_types=True)"},
    {"flatten_with_path", (PyCFunction)cn_flatten_with_path, METH_O,
     "flatten_with_path(structure)"},
    {"map_structure_with_path", (PyCFunction)(void (*)(void))cn_map_structure_with_path,
     METH_FASTCALL | METH_KEYWORDS, "map_structure_with_path(func, *structures, check_types=True)"},
    {"flatten_up_to", (PyCFunction)(void (*)(void))cn_flatten_up_to, METH_FASTCALL | METH_KEYWORDS,
     "flatten_up_to(shallow, structure, check_types=True)"},
    {"flatten_with_path_up_to", (PyCFunction)(void (*)(void))cn_flatten_with_path_up_to,
     METH_FASTCALL | METH_KEYWORDS,
     "flatten_with_path_up_to(shallow, structure, check_types=True)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cnest_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "nestlib._cnest",
    .m_doc = "nestlib's compiled core (see nestlib/_native.py).",
    .m_size = -1,
    .m_methods = cnest_methods,
};

PyMODINIT_FUNC
PyInit__cnest(void)
{
    PyObject *m;
    if (PyType_Ready(&SpecCore_Type) < 0)
        return NULL;
    s_fields = PyUnicode_InternFromString("_fields");
    s_check_types = PyUnicode_InternFromString("check_types");
    s_tf_flatten = PyUnicode_InternFromString("__tf_flatten__");
    g_empty_tuple = PyTuple_New(0);
    if (s_fields == NULL || s_check_types == NULL || s_tf_flatten == NULL || g_empty_tuple == NULL)
        return NULL;
    m = PyModule_Create(&cnest_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&SpecCore_Type);
    if (PyModule_AddObject(m, "SpecCore", (PyObject *)&SpecCore_Type) < 0) {
        Py_DECREF(&SpecCore_Type);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
