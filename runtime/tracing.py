"""The traced example: one sample replayed step by step, with what the model predicted at each draw,
as data (``trace``) and in the seed's text format (``render``). docs/sampling-controls.md, "Trace",
is the reference for both.

Shapes: V vocabulary entries, H heads, P cached positions, D head_dim.
"""

from __future__ import annotations

import json
from math import floor

import numpy as np

from . import sampling
from .metadata import POSITION, TOKEN
from .plan import Plan
from .runner import StepRunner

TOP = 5  # tokens shown per step
MAX_TRACES = 100  # traces a call makes at most (mgpt-generate --trace, mgpt-serve's trace): ~10 lines a character


def trace(runner: StepRunner, plan: Plan, index: int, attempt: int) -> dict:
    """The steps of attempt ``attempt`` (returned as sample ``index``): each draw made as the
    batched loop makes it (the same mask, rule and uniform), with the distribution it drew from."""
    info, constraint = runner.info, plan.constraint
    bos, chars = info.bos, info.vocab.chars
    u = (sampling.uniforms(plan.seed, np.array([attempt]), plan.length)[0] if plan.temperature > 0
         else np.zeros(plan.length))
    state = constraint.start if constraint is not None else 0
    cache, logits = plan.cache, plan.logits
    token, text, steps, stopped = plan.context[-1], plan.prefix, [], False

    labels = [label for group in info.vocab.labels for label in group]  # token bos + 1 + i is labels[i]

    def described(t: int) -> dict:  # a label token (a labeled model's step 1 input): no char, its label
        if t > bos:
            return {"token": int(t), "char": None, "label": labels[t - bos - 1]}
        return {"token": int(t), "char": chars[t] if t < bos else None}

    for p in range(plan.start, plan.length):
        if p > plan.start:  # the first draw is from the plan's logits
            feed = {TOKEN: np.array([token], np.int64), POSITION: runner.positions[p], **dict(zip(runner.past, cache))}
            out, *cache = runner.run(feed)
            logits = out[0]
        column = np.array(logits, dtype=np.float32).reshape(-1, 1)  # (V, 1)
        if constraint is not None:
            column[~constraint.allowed(np.array([state]), p - plan.offset)[0], 0] = -np.inf
        try:
            pick = int(sampling.draw(column, u[p: p + 1], plan.temperature, plan.top_k, plan.top_p)[0])
        except sampling.LogitsError:
            raise runner.not_finite(p) from None
        if plan.temperature == 0:
            probs = np.zeros(len(column))
            probs[pick] = 1.0
        else:
            w = sampling.weights(column, plan.temperature, plan.top_k, plan.top_p)[:, 0]
            total = sampling.cumulative(w[:, None].copy())[-1, 0]  # the draw's own total, added in order
            probs = w / total
        ranked = sorted((t for t in range(len(probs)) if probs[t] > 0), key=lambda t: (-probs[t], t))
        step = {"step": len(steps) + 1, "position": p, "input": described(token),
                "top": [{**described(t), "p": float(probs[t])} for t in ranked[:TOP]],
                "more": len(ranked) > TOP,
                "uniform": float(u[p]) if plan.temperature > 0 else None, "pick": described(pick)}
        if pick != bos:
            text += chars[pick]
        step["sample"] = text
        steps.append(step)
        if pick == bos:
            stopped = True
            break
        token = pick
        if constraint is not None:
            state = int(constraint.delta[state, pick])
    return {"text": text, "index": index, "attempt": attempt, "prefix": plan.prefix, "stopped": stopped,
            "steps": steps}


def shown(char: str | None, label: str | None = None) -> str:
    """A token as the text shows it: BOS, a label (label 'F'), or the character in single quotes
    with JSON's escapes (but " as itself and ' escaped)."""
    if label is not None:
        return f"label {shown(label)}"
    if char is None:
        return "BOS"
    inner = json.dumps(char, ensure_ascii=False)[1:-1].replace('\\"', '"').replace("'", "\\'")
    return f"'{inner}'"


def percent(p: float) -> str:
    x = 100 * p
    return "<1%" if x < 0.5 else f"{floor(x + 0.5)}%"


def render(data: dict, number: int) -> str:
    """A trace in the seed's text format, as sample ``number`` (counted from 1), ending with a blank line."""
    lines = [f"Sample {number} (attempt {data['attempt']})"]
    if data["prefix"]:
        lines.append(f"Prefix: {json.dumps(data['prefix'], ensure_ascii=False)}")
    for i, step in enumerate(data["steps"]):
        if i:
            lines.append("")
        predicted = ", ".join(f"{shown(t['char'])}({percent(t['p'])})" for t in step["top"])
        pick = step["pick"]
        lines += [f"Step {step['step']}: Input {shown(step['input']['char'], step['input'].get('label'))}",
                  f"        Model predicts: {predicted}{', ...' if step['more'] else ''}",
                  f"        {'Random' if step['uniform'] is not None else 'Greedy'} pick: {shown(pick['char'])} "
                  f"(token {pick['token']})"]
        if pick["char"] is None:
            lines.append("        STOP!")
        else:
            lines.append(f"        sample = [{', '.join(shown(c) for c in step['sample'])}]")
    if not data["stopped"]:
        lines.append("        END! (the block is full)")
    lines += ["", f"Output: {json.dumps(data['text'], ensure_ascii=False)}", ""]
    return "\n".join(lines) + "\n"
