"""A reader of ISCN karyotype strings, for ELN risk (pure functions, no I/O).

:func:`read_karyotype` turns one ISCN text into a :class:`Karyotype`: the acquired abnormalities
(union over the clones, sidelines written with ``idem``/``sl``/``sdlN`` or in full), the
constitutional ones (suffix ``c``, kept apart and never counted), the counts ELN needs, and a
canonical *feature text* that the lesion patterns of ``rules/karyotype_lesions.csv`` search.
Anything it cannot read gives ``readable = False`` and the reason; it never guesses.

Feature text: ``",46,,xy,,t(8;21)(q22;q22.1),,j(8q22;21q22.1),"`` -- every token enclosed in its
own commas: the modal number, the sex chromosomes, each acquired abnormality (canonical ISCN),
then derived tokens the patterns can rely on:

* ``j(<chr><band>;<chr><band>)`` -- a junction of two breakpoints (translocations, insertions,
  inversions, derivatives; chromosomes in ISCN order), e.g. ``j(9p21.3;11q23.3)``;
* ``loss(<chr><arm>)`` / ``del(<chr><arm>)`` / ``add(<chr><arm>)`` -- arm-level losses: whole-arm
  derivatives ``der(5;17)(p10;q10)`` lose 5q and 17p, ``i(17)(q10)`` loses 17p, ``idic`` loses
  the arm distal to the breakpoint; ``del(5)(q13q33)`` is ``del(5q)``;
* ``fusion(<gene>;<gene>)`` (``nuc ish`` ``con`` signals, genes sorted), ``split(<gene>)``
  (``sep`` signals), ``fishcn(<probe>)=<n>`` (interphase copy number of a probe).

Sources: ISCN 2020 (McGowan-Jordan J, Hastings RJ, Moore S, eds. Karger 2020) and ISCN 2024,
chapters on clonal evolution (``idem``, ``sl``, ``sdl``), constitutional anomalies (``c``),
whole-arm translocations (``p10``/``q10``), insertions and in situ hybridization (``nuc ish``,
``con``, ``sep``). The PyPI package ``iscn-authenticator`` 0.2.1 was evaluated and not used: it
rejects ``idem``, the ``c`` suffix, ``ins(10;11)(p12;q23q13)`` and ``nuc ish``, and reads
``der(5;17)(p10;q10)`` as an unknown abnormality (see ``rules/README.md``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

# characters pasted from PDFs / word processors that mean an ASCII sign
_DASHES = dict.fromkeys(map(ord, "\u2212\u2010\u2011\u2012\u2013\u2014\u2015\ufe63\uff0d"), "-")
_OTHER = {ord("\uff0b"): "+", ord("\u2044"): "/", ord("\u037e"): ";", ord("\uff1b"): ";",
          ord("\u201a"): ",", ord("\uff0c"): ",", ord("\u3001"): ","}

_CHROM = r"(?:[1-9]|1[0-9]|2[0-2]|x|y)"
_BAND = re.compile(r"(p|q)?(ter|cen|[0-9]{1,2}(?:\.[0-9]{1,3})?)")
_TYPES = ("der", "ider", "idic", "dic", "del", "dup", "inv", "ins", "add", "trp", "qdp", "hsr", "fra",
          "rob", "tas", "t", "i", "r")
_STRUCT = re.compile(
    rf"(?P<type>{'|'.join(_TYPES)})\((?P<chroms>{_CHROM}(?:;{_CHROM})*)\)"
    r"(?:\((?P<bands>[pqtercn0-9.;]+)\))?")
_NUMERIC = re.compile(rf"(?P<sign>[+-])(?P<chrom>{_CHROM})")
_MARKER = re.compile(r"\+?(?P<n>[0-9]*)(?P<kind>mar|dmin|r)(?P<id>[0-9]*)")
_OLD_ARM = re.compile(rf"(?P<chrom>{_CHROM})(?P<arm>[pq])(?P<sign>[+-])")  # 5q-  (pre-ISCN 1995 style)
_SHORT_ARM = re.compile(rf"(?P<type>del|i|add)\((?P<chrom>{_CHROM})(?P<arm>[pq])\)")  # del(5q), i(17q)
_COUNT = re.compile(r"(?P<n>[0-9]{2,3})(?:~(?P<hi>[0-9]{2,3}))?(?:<[0-9]n>)?")
_SEX = re.compile(r"[xy]+")
_SIDELINE = re.compile(r"(idem|sl|sdl(?P<k>[0-9]*))(?:x[0-9])?")
_CELLS = re.compile(r"\[(?P<cells>[^\]]*)\]$")
# arrangements a risk class never depends on the breakpoints of (may be written without them)
_UNAMBIGUOUS = {("t", ("8", "21")), ("inv", ("16",)), ("t", ("16", "16")), ("t", ("15", "17")),
                ("t", ("6", "9")), ("t", ("9", "22"))}


def chrom_order(c: str) -> int:
    return {"x": 23, "y": 24}.get(c, int(c) if c.isdigit() else 99)


def normalize(text: str) -> str:
    """Unicode-normalised, lower-case ISCN without whitespace (U+2212 minus -> ``-`` etc.)."""
    t = unicodedata.normalize("NFKC", text).translate(_DASHES).translate(_OTHER)
    return re.sub(r"\s+", "", t).lower()


@dataclass(frozen=True)
class Abnormality:
    token: str                    # canonical ISCN, e.g. "del(9)(q13q22)", "+8", "-7"
    kind: str                     # "gain", "loss", "structural"
    chromosomes: tuple[str, ...] = ()
    derived: tuple[str, ...] = ()  # junction / arm-loss tokens


@dataclass(frozen=True)
class Karyotype:
    """What :func:`read_karyotype` read; ``readable`` False with ``reason`` when it could not."""

    text: str
    readable: bool
    reason: str | None = None
    modal_number: int | None = None
    sex: str | None = None
    acquired: tuple[Abnormality, ...] = ()
    constitutional: tuple[str, ...] = ()
    fish: tuple[str, ...] = ()
    incomplete: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def n_abnormalities(self) -> int | None:
        return None if not self.readable or self.incomplete else len(self.acquired)

    def _n(self, pred) -> int | None:  # type: ignore[no-untyped-def]
        return None if not self.readable or self.incomplete else sum(1 for a in self.acquired if pred(a))

    @property
    def n_structural(self) -> int | None:
        return self._n(lambda a: a.kind == "structural")

    @property
    def n_gains(self) -> int | None:
        return self._n(lambda a: a.kind == "gain")

    @property
    def n_autosomal_monosomies(self) -> int | None:
        return self._n(lambda a: a.kind == "loss" and a.chromosomes[0] not in ("x", "y"))

    @property
    def feature_text(self) -> str | None:
        if not self.readable:
            return None
        tokens = [str(self.modal_number), self.sex or ""]
        for a in self.acquired:
            tokens.append(a.token)
            tokens.extend(a.derived)
        tokens.extend(self.fish)
        return "".join(f",{t}," for t in tokens)


class _Unreadable(Exception):
    pass


# ---- breakpoints ----------------------------------------------------------------------------------

def _bands(text: str, chroms: tuple[str, ...]) -> list[list[str]]:
    """``"p12;q23q13"`` for (10, 11) -> [["p12"], ["q23", "q13"]] (arm carried over: ``q22;26``)."""
    groups = text.split(";")
    if len(groups) != len(chroms):
        # inv(3)(q21q26) may be typed "q21;26": one chromosome, two breakpoints
        if len(chroms) == 1 and len(groups) == 2:
            groups = ["".join(groups)]
        else:
            raise _Unreadable(f"{len(groups)} breakpoint group(s) for {len(chroms)} chromosome(s)")
    out: list[list[str]] = []
    arm = ""
    for g in groups:
        pos, bands = 0, []
        while pos < len(g):
            m = _BAND.match(g, pos)
            if not m or m.end() == pos:
                raise _Unreadable(f"breakpoint {g!r} not read")
            a = m.group(1) or arm
            if not a and m.group(2) not in ("ter", "cen"):
                raise _Unreadable(f"breakpoint {g!r} has no arm (p or q)")
            arm = a
            bands.append(f"{a}{m.group(2)}")
            pos = m.end()
        if not bands:
            raise _Unreadable(f"empty breakpoint group in {text!r}")
        out.append(bands)
    return out


def _junction(a: str, b: str) -> str:
    def key(s: str) -> tuple[int, str]:
        c = re.match(r"([0-9]+|x|y)", s)
        return (chrom_order(c.group(1)) if c else 99, s)
    x, y = sorted((a, b), key=key)
    return f"j({x};{y})"


def _other_arm(arm: str) -> str:
    return "q" if arm == "p" else "p"


def _derived(kind: str, chroms: tuple[str, ...], bands: list[list[str]]) -> list[str]:
    """Junction and arm-loss tokens of one structural abnormality."""
    out: list[str] = []
    if kind in ("t", "der", "dic", "rob") and len(chroms) >= 2:
        first = [c + b[0] for c, b in zip(chroms, bands, strict=True)]
        whole_arm = all(b[0][1:] == "10" for b in bands)
        if whole_arm and kind in ("der", "dic", "rob"):
            # der(5;17)(p10;q10): the derivative keeps 5p and 17q; 5q and 17p are lost
            out += [f"loss({c}{_other_arm(b[0][0])})" for c, b in zip(chroms, bands, strict=True)]
        n = len(first)
        pairs = [(first[i], first[(i + 1) % n]) for i in range(n if n > 2 else 1)]
        out += [_junction(a, b) for a, b in pairs]
    elif kind == "ins" and len(chroms) == 2:
        recipient = chroms[0] + bands[0][0]
        out += [_junction(recipient, chroms[1] + b) for b in bands[1]]
    elif kind == "ins" and len(chroms) == 1 and len(bands[0]) >= 2:
        out += [_junction(chroms[0] + bands[0][0], chroms[0] + b) for b in bands[0][1:]]
    elif kind == "inv" and len(bands[0]) == 2:
        out.append(_junction(chroms[0] + bands[0][0], chroms[0] + bands[0][1]))
    elif kind in ("del", "add") and len(chroms) == 1:
        out.append(f"{kind}({chroms[0]}{bands[0][0][0]})")
    elif kind in ("i", "idic") and len(chroms) == 1:
        arm = bands[0][0][0]
        # i(17)(q10): two 17q arms, 17p lost; idic(17)(p11.2): 17p distal to p11.2 lost
        out.append(f"loss({chroms[0]}{_other_arm(arm) if kind == 'i' else arm})")
    return out


# ---- tokens ---------------------------------------------------------------------------------------

def _read_token(tok: str) -> tuple[Abnormality, bool]:
    """One abnormality; returns (abnormality, constitutional)."""
    constitutional = False
    core = tok
    m = re.fullmatch(r"(.*?)(c)?(x[0-9])?", core)
    if m and m.group(2) and not core.endswith("dmin") and m.group(1):
        core, constitutional = m.group(1) + (m.group(3) or ""), True
    core = re.sub(r"x[0-9]$", "", core) if _STRUCT.search(core) else core
    core = core.replace("?", "")
    if _NUMERIC.fullmatch(core):
        n = _NUMERIC.fullmatch(core)
        assert n
        kind = "gain" if n.group("sign") == "+" else "loss"
        return Abnormality(core, kind, (n.group("chrom"),)), constitutional
    if _MARKER.fullmatch(core):
        return Abnormality(core.lstrip("+"), "structural"), constitutional
    old = _OLD_ARM.fullmatch(core)
    if old:
        typ = "del" if old.group("sign") == "-" else "add"
        c, arm = old.group("chrom"), old.group("arm")
        return Abnormality(f"{typ}({c}{arm})", "structural", (c,), (f"{typ}({c}{arm})",)), constitutional
    short = _SHORT_ARM.fullmatch(core.lstrip("+-"))
    if short:
        c, arm, typ = short.group("chrom"), short.group("arm"), short.group("type")
        derived = f"loss({c}{_other_arm(arm)})" if typ == "i" else f"{typ}({c}{arm})"
        return Abnormality(f"{typ}({c}{arm})", "structural", (c,), (derived,)), constitutional
    sign = core[0] if core[:1] in "+-" else ""
    body = core[len(sign):]
    pos, parts, derived, chroms_all = 0, [], [], []
    while pos < len(body):
        s = _STRUCT.match(body, pos)
        if not s:
            raise _Unreadable(f"abnormality {tok!r} not read (at {body[pos:]!r})")
        kind, chroms = s.group("type"), tuple(s.group("chroms").split(";"))
        if s.group("bands") is None:
            leads_derivative = kind in ("der", "ider") and s.end() < len(body)
            if (kind, chroms) not in _UNAMBIGUOUS and not leads_derivative:
                raise _Unreadable(f"abnormality {tok!r} has no breakpoints; its risk class depends on them")
            bands: list[list[str]] = []
            canon = f"{kind}({';'.join(chroms)})"
            if (kind, chroms) in _UNAMBIGUOUS:
                derived.append(f"{kind}({';'.join(chroms)})")
        else:
            bands = _bands(s.group("bands"), chroms)
            canon = f"{kind}({';'.join(chroms)})({';'.join(''.join(b) for b in bands)})"
            derived += _derived(kind, chroms, bands)
        parts.append(canon)
        chroms_all.extend(chroms)
        pos = s.end()
    if not parts:
        raise _Unreadable(f"abnormality {tok!r} not read")
    if parts[0].startswith("der(") and "(" not in parts[0][4:-1] and len(parts) > 1:
        c = parts[0][4:-1]
        m2 = _STRUCT.match(parts[1])
        if m2 and m2.group("bands") and c in m2.group("chroms").split(";"):
            i = m2.group("chroms").split(";").index(c)
            b = _bands(m2.group("bands"), tuple(m2.group("chroms").split(";")))[i][0]
            if b[1:] != "10":  # whole-arm exchanges were handled above
                derived.append(f"loss({c}{b[0]})")
    token = sign + "".join(parts)
    return Abnormality(token, "structural", tuple(dict.fromkeys(chroms_all)), tuple(derived)), constitutional


def _split_top(text: str) -> list[str]:
    """Split at commas outside parentheses."""
    out, depth, cur = [], 0, []
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


# ---- FISH -----------------------------------------------------------------------------------------

_FISH_GROUP = re.compile(r"\((?P<body>[^()]*)\)(?:x(?P<n>[0-9]+))?")


def _read_fish(text: str) -> list[str]:
    """``nucish(runx1t1,runx1)x3(runx1t1conrunx1x2)[180/200]`` -> fusion / copy-number tokens."""
    out: list[str] = []
    for part in _split_top(text):
        if not part:
            continue
        m = re.fullmatch(r"nucish(?P<groups>(\([^()]*\)(x[0-9]+)?,?)+)(\[[0-9/]+\])?", part)
        if not m:
            raise _Unreadable(f"FISH part {part!r} not read (only interphase 'nuc ish' is read)")
        for g in _FISH_GROUP.finditer(m.group("groups")):
            body, n = g.group("body"), g.group("n")
            if "sep" in body:
                raise _Unreadable(f"break-apart signal {body!r}: the partner is not known, not read")
            if "con" in body:
                # ISCN writes the count after the second probe: (RUNX1T1 con RUNX1x2)
                sides = body.split("con")
                if len(sides) != 2 or not re.search(r"x[0-9]+$", sides[1]):
                    raise _Unreadable(f"FISH signal {body!r} not read")
                a, b = sorted((sides[0], re.sub(r"x[0-9]+$", "", sides[1])))
                if not a or not b:
                    raise _Unreadable(f"FISH signal {body!r} not read")
                out.append(f"fusion({a};{b})")
                continue
            for p in (p for p in body.split(",") if p):
                # a group count applies to every probe: (RUNX1T1,RUNX1)x3; else each has its own
                pm = re.fullmatch(r"([a-z0-9'.-]+)", p) if n else re.fullmatch(r"([a-z0-9'.-]+)x([0-9]+)", p)
                if not pm:
                    raise _Unreadable(f"FISH probe {p!r} not read (no copy number)")
                out.append(f"fishcn({pm.group(1)})={n or pm.group(2)}")
    return out


# ---- the whole text ---------------------------------------------------------------------------------

def read_karyotype(text: str | None) -> Karyotype:
    """Read one ISCN karyotype (see the module docstring); never raises on bad text."""
    if text is None:
        return Karyotype("", False, "no karyotype")
    try:
        return _read(text)
    except _Unreadable as e:
        return Karyotype(text, False, f"cannot read ISCN {text!r}: {e}")


def _read(text: str) -> Karyotype:
    t = normalize(text)
    if not t:
        raise _Unreadable("empty")
    karyo, _, fish_text = t.partition(".nucish")
    if ".ish" in karyo or ".arr" in karyo or karyo.startswith(("ish", "arr")):
        raise _Unreadable("metaphase FISH (ish) or microarray (arr) parts are not read")
    fish = _read_fish("nucish" + fish_text) if fish_text else []
    if karyo.startswith("nucish"):  # FISH only, no karyotype
        raise _Unreadable("no G-banded karyotype (FISH only)")
    clones = karyo.split("/")
    read: list[tuple[int, list[Abnormality]]] = []
    constitutional: list[str] = []
    modal, sex, incomplete = None, None, False
    for i, clone in enumerate(clones):
        clone = _CELLS.sub("", clone)
        fields = _split_top(clone)
        if len(fields) < 2:
            raise _Unreadable(f"clone {i + 1} {clone!r} is not '<count>,<sex chromosomes>[,...]'")
        cm = _COUNT.fullmatch(fields[0])
        if not cm:
            raise _Unreadable(f"clone {i + 1}: chromosome count {fields[0]!r} not read")
        abns: list[Abnormality] = []
        side = _SIDELINE.fullmatch(fields[1])
        if side:
            if not read:
                raise _Unreadable(f"clone 1 cannot be {fields[1]!r}")
            k = side.group("k")
            ref = 0 if side.group(1) in ("idem", "sl") else (int(k) if k else len(read) - 1)
            if ref >= len(read):
                raise _Unreadable(f"clone {i + 1}: {fields[1]!r} refers to a clone not given")
            abns = list(read[ref][1])
        elif _SEX.fullmatch(fields[1].removesuffix("c")):
            if i == 0:
                sex = fields[1]
        else:
            raise _Unreadable(f"clone {i + 1}: sex chromosomes {fields[1]!r} not read")
        if i == 0:
            modal = int(cm.group("n"))
        for tok in fields[2:]:
            if tok == "inc":
                incomplete = True
                continue
            if not tok:
                raise _Unreadable(f"clone {i + 1}: empty field")
            abn, const = _read_token(tok)
            if const:
                constitutional.append(abn.token)
            else:
                abns.append(abn)
        read.append((i, abns))
    # union over clones, keeping within-clone multiplicity (+8,+8 is two gains)
    counts: dict[str, int] = {}
    first: dict[str, Abnormality] = {}
    for _, abns in read:
        here: dict[str, int] = {}
        for a in abns:
            here[a.token] = here.get(a.token, 0) + 1
            first.setdefault(a.token, a)
        for tok, n in here.items():
            counts[tok] = max(counts.get(tok, 0), n)
    acquired = tuple(first[tok] for tok, n in counts.items() for _ in range(n))
    return Karyotype(text, True, None, modal, sex, acquired, tuple(dict.fromkeys(constitutional)),
                     tuple(fish), incomplete)
