"""A small parser for the Prometheus text exposition format (version 0.0.4)."""

import math
import re

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


class Family:
    def __init__(self, name):
        self.name = name
        self.type = None
        self.help = None
        self.samples = []  # [(sample_name, {label: value}, float)]

    def value(self, **labels):
        """Sum of samples whose labels include all of `labels`."""
        return sum(v for _, l, v in self.samples
                   if all(l.get(k) == str(w) for k, w in labels.items()))

    def label_values(self, label):
        return {l[label] for _, l, _ in self.samples if label in l}


class ParseError(ValueError):
    pass


def _unescape(s):
    return s.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")


def _parse_labels(text, lineno):
    labels, pos = {}, 0
    text = text.strip()
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if not m:
            raise ParseError("line %d: bad labels %r" % (lineno, text))
        labels[m.group(1)] = _unescape(m.group(2))
        pos = m.end()
    return labels


def _parse_value(s, lineno):
    try:
        return float({"+Inf": "inf", "-Inf": "-inf", "NaN": "nan"}.get(s, s))
    except ValueError:
        raise ParseError("line %d: bad value %r" % (lineno, s))


def parse(text):
    """Returns {family_name: Family}. Raises ParseError on malformed input."""
    families = {}

    def family(name):
        if name not in families:
            families[name] = Family(name)
        return families[name]

    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                f = family(parts[2])
                rest = parts[3] if len(parts) > 3 else ""
                if parts[1] == "TYPE":
                    if rest not in ("counter", "gauge", "histogram", "summary", "untyped"):
                        raise ParseError("line %d: bad type %r" % (lineno, rest))
                    if f.samples:
                        raise ParseError("line %d: TYPE after samples of %s" % (lineno, f.name))
                    f.type = rest
                else:
                    f.help = rest
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ParseError("line %d: bad sample %r" % (lineno, line))
        name, labels = m.group(1), _parse_labels(m.group(3) or "", lineno)
        value = _parse_value(m.group(4), lineno)
        base = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[: -len(suffix)] in families:
                base = name[: -len(suffix)]
        family(base).samples.append((name, labels, value))
    for f in families.values():
        for _, _, v in f.samples:
            if f.type == "counter" and (v < 0 or math.isnan(v)):
                raise ParseError("counter %s has value %r" % (f.name, v))
    return families
