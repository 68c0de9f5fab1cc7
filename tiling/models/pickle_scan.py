"""Reads a checkpoint's pickle without unpickling it, and refuses one that would call any constructor.

A genuine ``torch.save`` of an Ultralytics model (pickle protocol 2) rebuilds every module as
``cls.__new__(cls)`` (NEWOBJ with no arguments) plus its saved ``__dict__`` (BUILD), and every tensor
through ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter``. Anything else a REDUCE or NEWOBJ
could reach runs code the uploader chose: ``DistillationModel(url, ...)`` downloads, ``nn.Linear(16000,
16000)`` allocates 1 GB. So the stream is simulated symbolically, opcode by opcode: nothing is imported
except the allowed model-class modules, nothing is called, and what tensors would allocate is summed.
"""
from __future__ import annotations

import math
import pickletools
from dataclasses import dataclass, field

from .allowlist import CALLABLES, RESULTS, STORAGE_SIZES, class_for
from .base import ModelError

MAX_OPS = 1_000_000  # YOLOv9e's pickle has 191 k; each costs ~1-4 us and up to ~100 bytes to simulate


@dataclass(frozen=True, slots=True)
class Ref:
    """A GLOBAL: ``kind`` is "class" (NEWOBJ only), "call" (one of CALLABLES) or "storage"."""
    name: str
    kind: str


class Tup:
    """A tuple; ``has_ref``: it holds a GLOBAL somewhere (only a persistent id or a legacy getattr may)."""

    __slots__ = ("items", "has_ref")

    def __init__(self, items: tuple):
        self.items = items
        self.has_ref = any(type(i) is Ref or (type(i) is Tup and i.has_ref) for i in items)


@dataclass(slots=True)
class Obj:
    """Anything built: ``kind`` is a container ("dict", "list", "od" ...), "instance", "tensor", ..."""
    kind: str
    nbytes: int = 0
    numel: int = 0
    filled: bool = False


DICT, LIST, SET = Obj("dict"), Obj("list"), Obj("set")  # shared: only an OrderedDict's contents matter
CONTAINERS = {"EMPTY_DICT": DICT, "EMPTY_LIST": LIST, "EMPTY_SET": SET}
TUPLES = ("EMPTY_TUPLE", "TUPLE1", "TUPLE2", "TUPLE3")  # index: how many items each takes
LITERAL_OPS = {"NONE", "NEWTRUE", "NEWFALSE", "BININT", "BININT1", "BININT2", "LONG1", "BINFLOAT", "BINUNICODE",
               "SHORT_BINSTRING"}


@dataclass
class Report:
    """What the checkpoint would allocate, summed from its storages before any of it is read."""
    storage_bytes: int = 0
    elements: int = 0
    view_bytes: int = 0
    storages: dict = field(default_factory=dict)


class Scanner:
    """A symbolic unpickler: the same stack and memo, holding descriptions instead of objects."""

    def __init__(self, records: dict[str, int], label: str):
        self.records, self.label = records, label
        self.stack: list = []
        self.marks: list[list] = []
        self.memo: dict = {}
        self.report = Report()

    def refuse(self, why: str) -> ModelError:
        return ModelError(f"{self.label} was refused: {why}. Nothing from it was run.")

    def run(self, data: bytes) -> Report:
        ops = {"GLOBAL": self.op_global, "NEWOBJ": self.op_newobj, "REDUCE": self.op_reduce, "BUILD": self.op_build,
               "BINPERSID": self.op_persid, "MARK": self.op_mark, "TUPLE": self.op_tuple, "APPEND": self.op_append,
               "APPENDS": lambda a: self.op_append(a, True), "SETITEMS": self.op_setitems,
               "SETITEM": lambda a: self.op_setitems(a, [self.stack.pop(-2), self.stack.pop()])}
        for count, (op, arg, _) in enumerate(pickletools.genops(data)):
            if count > MAX_OPS:
                raise self.refuse(f"its pickle has over {MAX_OPS} instructions (a large model has a few hundred "
                                  "thousand); reading it would take minutes")
            if op.name == "STOP":
                return self.op_stop()
            if op.name == "PROTO" and arg != 2:
                raise self.refuse(f"it uses pickle protocol {arg}; torch.save writes protocol 2")
            if op.name in ops:
                ops[op.name](arg)
            elif not self.plain_op(op.name, arg):
                raise self.refuse(f"its pickle uses the {op.name} instruction, which torch.save never writes")
        raise ModelError(f"{self.label} is not a loadable checkpoint: its pickle ends early")

    def plain_op(self, name: str, arg) -> bool:
        """Literals, tuples, empty containers and the memo: what they do cannot depend on the file."""
        if name in TUPLES:
            items = tuple(self.stack.pop() for _ in range(TUPLES.index(name)))[::-1]
            self.stack.append(Tup(items))
        elif name in CONTAINERS:
            self.stack.append(CONTAINERS[name])
        elif name in ("BINPUT", "LONG_BINPUT"):
            self.memo[arg] = self.stack[-1]
        elif name in ("BINGET", "LONG_BINGET"):
            self.stack.append(self.memo[arg])
        elif name in LITERAL_OPS:
            self.stack.append(arg)
        else:
            return name == "PROTO"
        return True

    # -- stack helpers -----------------------------------------------------------------------
    def pop_mark(self) -> list:
        items, self.stack = self.stack, self.marks.pop()
        return items

    def data(self, value, where: str):
        """A value stored in a container or state: plain data, never a class or function reference."""
        if isinstance(value, Ref) or (isinstance(value, Tup) and value.has_ref):
            raise self.refuse(f"it stores a reference to code ({where}), which a checkpoint never holds")
        return value

    def target(self, *kinds: str) -> Obj:
        top = self.stack[-1]
        if not (isinstance(top, Obj) and top.kind in kinds):
            raise ModelError(f"{self.label} is not a loadable checkpoint: its pickle is malformed")
        return top

    # -- opcodes ------------------------------------------------------------------------------
    def op_global(self, arg: str) -> None:
        module, _, attr = arg.partition(" ")
        name = f"{'builtins' if module == '__builtin__' else module}.{attr}"
        if name in STORAGE_SIZES:
            self.stack.append(Ref(name, "storage"))
        elif name in CALLABLES:
            self.stack.append(Ref(name, "call"))
        elif class_for(name) is not None:
            self.stack.append(Ref(name, "class"))
        else:
            raise self.refuse(f"it references {name}, which is outside the model classes a checkpoint may hold")

    def op_newobj(self, _arg) -> None:
        args, cls = self.stack.pop(), self.stack.pop()
        if not (isinstance(cls, Ref) and cls.kind == "class"):
            raise self.refuse(f"it creates {getattr(cls, 'name', type(cls).__name__)} by calling it")
        if not (isinstance(args, Tup) and not args.items):
            raise self.refuse(f"it passes arguments to {cls.name}.__new__; saved modules never have any")
        self.stack.append(Obj("instance"))

    def op_reduce(self, _arg) -> None:
        args, func = self.stack.pop(), self.stack.pop()
        if isinstance(func, Ref) and func.kind == "class":
            raise self.refuse(f"it calls the constructor of {func.name} with its own arguments "
                              "(a checkpoint must only hold saved state)")
        if not (isinstance(func, Ref) and func.kind == "call" and isinstance(args, Tup)):
            raise self.refuse(f"it calls {getattr(func, 'name', type(func).__name__)}")
        self.stack.append(self.call(func.name, args.items))

    def call(self, name: str, args: tuple):
        """The result of one of CALLABLES, after checking its arguments are what torch.save writes."""
        if name == "builtins.getattr":  # pickle's spelling of a function such as Detect.forward (older heads)
            ok = len(args) == 2 and isinstance(args[0], Ref) and args[0].kind == "class"
            if not (ok and args[1] in ("forward", "forward_fuse")):
                raise self.refuse("it looks up an attribute other than a module's forward")
            return Obj("function")
        for a in args:
            self.data(a, name)
        if name == "torch._utils._rebuild_tensor_v2":
            return self.tensor(args)
        if name == "torch._utils._rebuild_parameter":
            self.expect(len(args) == 3 and getattr(args[0], "kind", "") == "tensor" and self.no_hooks(args[2]), name)
            return args[0]
        kind = RESULTS[name]
        if kind in ("od", "namespace"):
            ok = not args
        elif kind == "set":
            ok = len(args) <= 1 and all(getattr(a, "kind", "") == "list" for a in args)
        elif kind == "dtype":
            ok = len(args) == 3 and isinstance(args[0], str) and len(args[0]) <= 8
        elif kind == "scalar":
            ok = len(args) == 2 and getattr(args[0], "kind", "") == "dtype" and getattr(args[1], "kind", "") == "bytes"
        elif kind == "size":
            ok = len(args) == 1 and self.ints(args[0])
        else:  # a device, a path, bytes from a latin-1 string: built from strings and ints only
            ok = all(type(a) in (str, int) for a in args)
        self.expect(ok, name)
        return Obj(kind)

    def tensor(self, args: tuple) -> Obj:
        """``_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)``: a view that fits."""
        name = "torch._utils._rebuild_tensor_v2"
        self.expect(len(args) in (6, 7) and isinstance(args[0], Obj) and args[0].kind == "storage"
                    and self.ints(args[2]) and self.ints(args[3]) and len(args[2].items) == len(args[3].items)
                    and isinstance(args[1], int) and args[1] >= 0 and self.no_hooks(args[5])
                    and (len(args) == 6 or args[6] is None), name)
        storage, size = args[0], args[2].items
        numel = math.prod(size)
        if len(size) > 8 or args[1] + numel > storage.numel:
            raise self.refuse("a tensor claims more elements than its storage holds")
        self.report.view_bytes += numel * storage.nbytes // max(1, storage.numel)
        return Obj("tensor", numel=numel)

    def op_build(self, _arg) -> None:
        state = self.data(self.stack.pop(), "object state")
        inst = self.target("instance", "namespace", "dtype")
        if inst.kind == "dtype":
            self.expect(isinstance(state, Tup), "numpy.dtype state")
        elif not (isinstance(state, Obj) and state.kind == "dict"):
            raise self.refuse("it restores an object from something other than its saved attributes")

    def op_persid(self, _arg) -> None:
        pid = self.stack.pop()
        items = pid.items if isinstance(pid, Tup) else ()
        if not (len(items) == 5 and items[0] == "storage" and isinstance(items[1], Ref) and items[1].kind == "storage"
                and isinstance(items[2], str) and isinstance(items[3], str) and isinstance(items[4], int)
                and not isinstance(items[4], bool) and items[4] >= 0):
            raise self.refuse("it holds a persistent reference that is not a tensor storage")
        _, kind, key, _, numel = items
        nbytes = numel * STORAGE_SIZES[kind.name]
        if self.records.get(key) != nbytes:
            raise self.refuse(f"storage {key!r} declares {nbytes} bytes but the archive holds "
                              f"{self.records.get(key, 'no record')}")
        seen = self.report.storages.get(key)
        if seen is None:
            self.report.storages[key] = nbytes
            self.report.storage_bytes += nbytes
            self.report.elements += numel
        elif seen != nbytes:
            raise self.refuse(f"storage {key!r} is declared twice with different sizes")
        self.stack.append(Obj("storage", nbytes=nbytes, numel=numel))

    def op_mark(self, _arg) -> None:
        self.marks.append(self.stack)
        self.stack = []

    def op_tuple(self, _arg) -> None:
        items = tuple(self.pop_mark())  # before self.stack: pop_mark swaps the list
        self.stack.append(Tup(items))

    def op_append(self, _arg, many: bool = False) -> None:
        for item in self.pop_mark() if many else [self.stack.pop()]:
            self.data(item, "a list")
        self.target("list")

    def op_setitems(self, _arg, items: list | None = None) -> None:
        for item in self.pop_mark() if items is None else items:
            self.data(item, "a dict")
        top = self.target("dict", "od")
        top.filled = top.filled or top.kind == "od"  # the shared plain-dict description stays as it is

    def op_stop(self) -> Report:
        top = self.stack.pop()
        if not (isinstance(top, Obj) and top.kind in ("dict", "od")):
            kind = "tuple" if isinstance(top, Tup) else getattr(top, "kind", type(top).__name__)
            raise ModelError(f"{self.label} is not an Ultralytics checkpoint: its top level is a {kind}, not the "
                             "dict that model.save() writes")
        return self.report

    # -- argument checks ----------------------------------------------------------------------
    def expect(self, ok: bool, name: str) -> None:
        if not ok:
            raise self.refuse(f"it calls {name} with arguments torch.save never writes")

    @staticmethod
    def ints(value) -> bool:
        return isinstance(value, Tup) and all(type(v) is int and v >= 0 for v in value.items)

    @staticmethod
    def no_hooks(value) -> bool:
        return isinstance(value, Obj) and value.kind == "od" and not value.filled
