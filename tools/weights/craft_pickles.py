#!/usr/bin/env python3
"""Crafts hostile PyTorch checkpoints for the restricted pickle reader's tests.

  craft_pickles.py OUTDIR          writes OUTDIR/<name>.pth (a torch-style zip archive
                                   holding archive/data.pkl and archive/byteorder) and
                                   OUTDIR/manifest.tsv: name, expected vnp_code name,
                                   expected message fragment, live (1 = unpickling it
                                   with Python's pickle creates the file 'pwned-<name>'
                                   in the current directory)
  craft_pickles.py --detonate FILE...
                                   unpickles each FILE's data.pkl with Python's own
                                   pickle module in the current directory (the control
                                   experiment: it proves a payload is live)

The expected fragments are derived from the bytes with pickletools, so they name the
exact opcode or global and its byte offset.
"""
import io
import os
import pickle
import pickletools
import subprocess
import sys
import time
import zipfile

ALLOWED_GLOBALS = {
    "collections OrderedDict", "torch._utils _rebuild_tensor_v2",
    "torch._utils _rebuild_parameter", "torch FloatStorage", "__main__ MLPClassifier",
    "torch.nn.modules.linear Linear", "argparse Namespace",
}
REFUSED_OPS = {"INST", "OBJ", "EXT1", "EXT2", "EXT4", "PERSID", "INT", "LONG", "FLOAT",
               "STRING", "UNICODE", "GET", "PUT", "NEXT_BUFFER", "READONLY_BUFFER"}


class Reducer:
    """An object whose unpickling calls fn(*args)."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def touch_cmd(name):
    return "touch pwned-" + name


def s(text):
    """BINUNICODE of text."""
    b = text.encode()
    return b"X" + len(b).to_bytes(4, "little") + b


def payloads():
    out = {}
    out["os_system_reduce"] = pickle.dumps(Reducer(os.system, (touch_cmd("os_system_reduce"),)), 2)
    out["os_system_global"] = (b"\x80\x02cos\nsystem\nq\x00" + s(touch_cmd("os_system_global")) +
                               b"\x85R.")
    out["posix_system"] = b"\x80\x02cposix\nsystem\n" + s(touch_cmd("posix_system")) + b"\x85R."
    out["builtins_eval"] = pickle.dumps(
        Reducer(eval, ("open('pwned-builtins_eval', 'w').close()",)), 2)
    out["builtins_exec"] = (b"\x80\x02c__builtin__\nexec\n" +
                            s("open('pwned-builtins_exec', 'w').close()") + b"\x85R.")
    out["subprocess_call"] = pickle.dumps(
        Reducer(subprocess.call, (["touch", "pwned-subprocess_call"],)), 2)
    out["subprocess_popen"] = (b"\x80\x02csubprocess\nPopen\n](" + s("touch") +
                               s("pwned-subprocess_popen") + b"e\x85R.")
    out["stack_global_p4"] = pickle.dumps(Reducer(os.system, (touch_cmd("stack_global_p4"),)), 4)
    out["stack_global_p5"] = pickle.dumps(Reducer(os.system, (touch_cmd("stack_global_p5"),)), 5)
    out["inst_opcode"] = b"\x80\x02(" + s(touch_cmd("inst_opcode")) + b"ios\nsystem\n."
    out["inst_protocol0"] = b"(S'" + touch_cmd("inst_protocol0").encode() + b"'\nios\nsystem\n."
    out["obj_opcode"] = b"\x80\x02(cos\nsystem\n" + s(touch_cmd("obj_opcode")) + b"o."
    out["obj_allowed_class"] = b"\x80\x02(c__main__\nMLPClassifier\no."
    # a module object whose BUILD state hides a call: refused at the global, before BUILD
    out["build_state_call"] = (b"\x80\x02ctorch.nn.modules.linear\nLinear\n)\x81}(" +
                               s("weight") + b"cos\nsystem\n" + s(touch_cmd("build_state_call")) +
                               b"\x85Rub.")
    # BUILD with a __setstate__-style dict on an allowed class: inert, then a call
    out["build_setstate"] = (b"\x80\x02c__main__\nMLPClassifier\n)\x81}(" + s("__setstate__") +
                             b"cbuiltins\neval\nub.")
    # a legitimate-looking state dict with one poisoned value
    out["poisoned_state_dict"] = (b"\x80\x02ccollections\nOrderedDict\n)R(" + s("a.weight") +
                                  b"N" + s("b.weight") + b"csubprocess\ncall\n](" + s("touch") +
                                  s("pwned-poisoned_state_dict") + b"e\x85Ru.")
    out["getattr_chain"] = (b"\x80\x02cbuiltins\ngetattr\ncbuiltins\n__import__\n" + s("os") +
                            b"\x85R" + s("system") + b"\x86R" + s(touch_cmd("getattr_chain")) +
                            b"\x85R.")
    out["torch_load_from_bytes"] = b"\x80\x02ctorch.storage\n_load_from_bytes\nC\x01x\x85R."
    out["ext1_opcode"] = b"\x80\x02\x82\x01."
    out["persid_text"] = b"\x80\x02Pstorage\n."
    out["reduce_on_string"] = b"\x80\x02" + s("os.system") + s("x") + b"\x85R."
    out["newobj_non_class"] = b"\x80\x02ctorch\nFloatStorage\n)\x81."
    out["allowed_fn_bad_args"] = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n" + s("x") + b"\x85R."
    return out


# Payloads refused for their structure rather than a global or opcode: (code, the
# opcode whose first occurrence is the refusal point, message text after it).
STRUCTURAL = {
    "reduce_on_string": ("EFORMAT", "REDUCE", "REDUCE: the callable is not a global"),
    "allowed_fn_bad_args": ("EFORMAT", "REDUCE", "_rebuild_tensor_v2 takes 6 or 7 arguments"),
    "newobj_non_class": ("EUNSUPPORTED", "NEWOBJ",
                         "creates an instance of 'torch.FloatStorage', which is not an allowed"),
}


def expectation(name, data):
    """(code, fragment) for the first thing the reader must refuse."""
    if name in STRUCTURAL:
        code, opname, text = STRUCTURAL[name]
        pos = next(p for op, _, p in pickletools.genops(data) if op.name == opname)
        if code == "EFORMAT":
            return code, "at byte %d (%s): %s" % (pos, opname, text)
        return code, "at byte %d %s" % (pos, text)
    try:
        ops = list(pickletools.genops(data))
    except Exception:  # noqa: BLE001 - an unparsable payload still has a first opcode
        ops = []
    strings = []
    for op, arg, pos in ops:
        if op.name in REFUSED_OPS:
            return "EUNSUPPORTED", "opcode 0x%02x (%s) at byte %d" % (data[pos], op.name, pos)
        if op.name == "GLOBAL" and arg not in ALLOWED_GLOBALS:
            return "EUNSUPPORTED", "global '%s' at byte %d" % (arg.replace(" ", "."), pos)
        if op.name == "STACK_GLOBAL":
            name = "%s %s" % (strings[-2], strings[-1])
            if name not in ALLOWED_GLOBALS:
                return "EUNSUPPORTED", "global '%s' at byte %d" % (name.replace(" ", "."), pos)
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"):
            strings.append(arg)
    raise SystemExit("no refusal point found")


def write_archive(path, data):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", data)
        z.writestr("archive/byteorder", "little")


def is_live(data, name, scratch):
    cwd = os.getcwd()
    os.makedirs(scratch, exist_ok=True)
    os.chdir(scratch)
    try:
        try:
            pickle.loads(data)
        except Exception:  # noqa: BLE001 - only the side effect matters here
            pass
        for _ in range(50 if "popen" in name else 1):  # Popen runs asynchronously
            if os.path.exists("pwned-" + name):
                return True
            time.sleep(0.02)
        return False
    finally:
        os.chdir(cwd)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "--detonate":
        for path in sys.argv[2:]:
            with zipfile.ZipFile(path) as z:
                data = z.read("archive/data.pkl")
            try:
                pickle.loads(data)
            except Exception as e:  # noqa: BLE001
                print(path, "raised", type(e).__name__, e, file=sys.stderr)
        return
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rows = []
    for name, data in payloads().items():
        write_archive(os.path.join(out, name + ".pth"), data)
        code, frag = expectation(name, data)
        live = is_live(data, name, os.path.join(out, "scratch"))
        rows.append("%s\t%s\t%s\t%d" % (name, code, frag, live))
    with open(os.path.join(out, "manifest.tsv"), "w") as f:
        f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
