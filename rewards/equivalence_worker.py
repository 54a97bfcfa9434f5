"""The math-verify worker process of rewards.equivalence; run as a script, never imported.

Protocol: one JSON object per line on stdin, one JSON answer per line on stdout, in order.
  {"op": "verify", "gold": "...", "prediction": "...", "float_rounding": 6} -> {"equal": true|false}
  {"op": "evaluate", "expression": "..."}                                   -> {"value": 1.4142...}
  failures                                                                  -> {"error": "parse-error", "detail": ".."}
The first line written is {"ready": true} (or {"fatal": "..."} when math-verify cannot be imported).

math-verify's own timeouts are switched off: they use signal.alarm and cannot stop C-level bignum work anyway;
the parent kills this process when an answer takes too long.
"""

import os
import sys

# The script's folder (rewards/) comes first on sys.path; its verl.py would shadow the real verl package.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import json  # noqa: E402
import logging  # noqa: E402


def _wrap(text: str) -> str:
    """Hand math-verify a LaTeX math span, the form its default extraction reads most reliably."""
    stripped = text.strip()
    return stripped if "$" in stripped or "\\boxed" in stripped else f"${stripped}$"


def _numeric_verdict(gold, prediction, float_rounding: int) -> bool | None:
    """For two constants ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"): True / False when their values are
    clearly equal / clearly apart, None otherwise. math-verify needs 50-700 ms to call two roots unequal."""
    import sympy

    if not all(isinstance(expr, sympy.Expr) and expr.is_number for expr in (gold, prediction)):
        return None
    a, b = complex(sympy.N(gold, 20)), complex(sympy.N(prediction, 20))
    scale = max(1.0, abs(a), abs(b))
    if abs(a - b) <= 1e-9 * scale:
        return True
    if abs(a - b) > 10.0 ** -float_rounding and abs(a - b) > 1e-6 * scale:
        return False
    return None


def _verify(request: dict, parse, verify) -> dict:
    gold = parse(_wrap(request["gold"]), parsing_timeout=None)
    prediction = parse(_wrap(request["prediction"]), parsing_timeout=None)
    if not gold:
        return {"error": "parse-error", "detail": "ground truth did not parse"}
    if not prediction:
        return {"error": "parse-error", "detail": "prediction did not parse"}
    float_rounding = int(request.get("float_rounding", 6))
    quick = _numeric_verdict(gold[0], prediction[0], float_rounding)
    if quick is not None:
        return {"equal": quick}
    equal = verify(gold, prediction, float_rounding=float_rounding, timeout_seconds=None)
    return {"equal": bool(equal)}


def _evaluate(request: dict, parse) -> dict:
    import sympy

    parsed = parse(_wrap(request["expression"]), parsing_timeout=None)
    if not parsed or not isinstance(parsed[0], sympy.Basic):
        return {"error": "parse-error", "detail": "expression did not parse"}
    value = complex(sympy.N(parsed[0]))
    if abs(value.imag) > 1e-12:
        return {"error": "parse-error", "detail": "expression is not a real number"}
    return {"value": value.real}


def _handle(request: dict, parse, verify) -> dict:
    try:
        if request.get("op") == "verify":
            return _verify(request, parse, verify)
        if request.get("op") == "evaluate":
            return _evaluate(request, parse)
        return {"error": "worker-error", "detail": f"unknown op {request.get('op')!r}"}
    except Exception as error:  # noqa: BLE001 - a process boundary: every failure goes back to the parent, which
        # counts and logs it with its reason (sympy raises many unrelated types for inputs it cannot handle).
        return {"error": "parse-error", "detail": f"{type(error).__name__}: {error}"[:200]}


def main() -> int:
    """Serve requests until stdin closes (the parent exited or closed the pool)."""
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout = sys.stderr  # library prints must not corrupt the protocol stream
    logging.disable(logging.CRITICAL)  # math-verify logs every unparsable input; the parent reports those
    try:
        from math_verify import parse, verify

        parse("$1$", parsing_timeout=None)  # pay the lazy imports before saying ready
    except ImportError as error:
        protocol.write(json.dumps({"fatal": f"cannot import math_verify: {error}"}) + "\n")
        protocol.flush()
        return 1
    protocol.write(json.dumps({"ready": True}) + "\n")
    protocol.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        answer = _handle(json.loads(line), parse, verify)
        protocol.write(json.dumps(answer) + "\n")
        protocol.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
