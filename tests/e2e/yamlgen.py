"""Emits block-style YAML from dicts/lists/scalars (strings double-quoted, JSON-escaped)."""

import json


def _scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))


def _emit(v, indent, out):
    pad = "  " * indent
    if isinstance(v, dict):
        for k, x in v.items():
            if isinstance(x, (dict, list)) and x:
                out.append("%s%s:" % (pad, k))
                _emit(x, indent + 1, out)
            else:
                out.append("%s%s: %s" % (pad, k, _flow(x)))
    elif isinstance(v, list):
        for x in v:
            if isinstance(x, dict) and x:
                sub = []
                _emit(x, indent + 1, sub)
                first = sub[0].lstrip()
                out.append("%s- %s" % (pad, first))
                out.extend(sub[1:])
            else:
                out.append("%s- %s" % (pad, _flow(x)))
    else:
        out.append(pad + _scalar(v))


def _flow(v):
    if isinstance(v, dict):
        return "{}" if not v else "{ " + ", ".join("%s: %s" % (k, _flow(x)) for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_flow(x) for x in v) + "]"
    return _scalar(v)


def dump(obj):
    out = []
    _emit(obj, 0, out)
    return "\n".join(out) + "\n"
