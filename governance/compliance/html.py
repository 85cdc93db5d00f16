"""HTML renderings of the JSON documents, self-contained (no scripts, no external files).

Every value is escaped by Jinja's autoescaping; charts are inline SVG drawn from the numbers the
JSON holds, so the page shows exactly the figures the JSON has.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment

_ENV = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; } td, th { padding: .2rem .6rem; text-align: left;
vertical-align: top; border-bottom: 1px solid #eee; } code { font-size: .85em; }
.ok { color: #176317; } .bad { color: #a31515; } .muted { color: #666; }
"""

_DOSSIER = _ENV.from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Decision dossier {{ d.decision.decision_id }}</title><style>{{ style }}</style></head>
<body>
<h1>Decision dossier</h1>
<p class="muted">Decision <code>{{ d.decision.decision_id }}</code>, made {{ d.decision.created_at }}
by {{ d.decision.model.name }} v{{ d.decision.model.version }} on endpoint
{{ d.decision.endpoint }} (route {{ d.decision.route }}).</p>

<h2>The decision</h2>
<table>
<tr><th>label</th><td id="label">{{ d.decision.label }}</td></tr>
<tr><th>score</th><td id="score">{{ d.decision.score }}</td></tr>
<tr><th>subject</th><td>{{ d.decision.subject_id or "" }}</td></tr>
<tr><th>out of distribution</th><td>{{ d.decision.is_outlier }} (score {{ d.decision.outlier_score }})</td></tr>
{% for name, value in (d.decision.features or {}).items() %}
<tr><th>{{ name }}</th><td>{{ value }}</td></tr>
{% endfor %}
{% for name, value in (d.decision.context or {}).items() %}
<tr><th>{{ name }} <span class="muted">(context)</span></th><td>{{ value }}</td></tr>
{% endfor %}
</table>
{% if d.redacted %}<p class="muted">Context withheld for this role: {{ d.redacted | join(", ") }}.</p>{% endif %}

<h2>Principal reasons</h2>
<ol>
{% for r in d.reasons.reasons %}
<li><strong>{{ r.code }}</strong>: {{ r.text }} <span class="muted">({{ r.feature }}, contribution {{ r.contribution }})</span></li>
{% else %}<li>No adverse reasons: the decision was favourable.</li>
{% endfor %}
</ol>

<h2>What drove the score (SHAP, {{ d.shap.space }})</h2>
<svg width="640" height="{{ 24 * bars | length + 10 }}" role="img" aria-label="SHAP attributions">
{% for name, value in bars %}
{% set width = (value | abs) / scale * 250 %}
<text x="0" y="{{ 24 * loop.index0 + 17 }}" font-size="13">{{ name }}</text>
<rect x="{{ 380 if value >= 0 else 380 - width }}" y="{{ 24 * loop.index0 + 5 }}" width="{{ width }}"
 height="16" fill="{{ '#2f6fb0' if value >= 0 else '#c0392b' }}"><title>{{ value }}</title></rect>
<text x="{{ 640 - 5 }}" y="{{ 24 * loop.index0 + 17 }}" font-size="12" text-anchor="end">{{ "%.4f" | format(value) }}</text>
{% endfor %}
</svg>
<p class="muted">Base value {{ d.shap.base_value }}, output {{ d.shap.output }}; {{ d.shap.method }}.</p>

<h2>What would have to change</h2>
{% if d.counterfactual.best %}
<table><tr><th>feature</th><th>from</th><th>to</th></tr>
{% for name, change in d.counterfactual.best.changes.items() %}
<tr><td>{{ name }}</td><td>{{ change["from"] }}</td><td>{{ change["to"] }}</td></tr>
{% endfor %}</table>
<p>With these changes the model gives {{ d.counterfactual.best.label }} (score {{ d.counterfactual.best.score }}).</p>
{% else %}<p>No change within the model's constraints flips this decision.</p>{% endif %}

<h2>Replay</h2>
<p class="{{ 'ok' if d.replay.reproduces_logged_decision else 'bad' }}">The logged input, scored again on the same
model version, gives {{ d.replay.replay.label }} (score {{ d.replay.replay.score }}):
{{ "it reproduces the logged decision exactly" if d.replay.reproduces_logged_decision else "it does NOT reproduce the logged decision" }}.</p>

<h2>The model</h2>
<table>
{% for key in ["estimator", "artifact_sha256", "fingerprint", "stage", "trained_at"] %}
<tr><th>{{ key }}</th><td><code>{{ d.model[key] }}</code></td></tr>
{% endfor %}
<tr><th>data</th><td>{{ d.model.dataset.name }} v{{ d.model.dataset.version }}, commit <code>{{ d.model.dataset.commit }}</code>, sha256 <code>{{ d.model.dataset.sha256 }}</code></td></tr>
<tr><th>seeds</th><td>{{ d.model.seeds }}</td></tr>
<tr><th>gate</th><td>{{ d.model.gate.rule if d.model.gate else "" }}: {{ "passed" if d.model.gate and d.model.gate.passed else "failed" }}</td></tr>
</table>

<h2>Integrity of this record</h2>
<p class="{{ 'ok' if d.chain.verified else 'bad' }}">Record {{ d.chain.seq }} of the decision log
{{ "verifies" if d.chain.verified else "does NOT verify" }}: content hash {{ d.chain.content_matches_hash }},
record hash {{ d.chain.record_hash_matches }}, linked to the previous record {{ d.chain.linked_to_previous }},
to the next {{ d.chain.linked_to_next }}.
{% if d.chain.signed_checkpoint %}A signed checkpoint at record {{ d.chain.signed_checkpoint.seq }} ({{ d.chain.signed_checkpoint.signed_at }}) covers it.{% endif %}</p>
<p class="muted">Record hash <code>{{ d.chain.record_hash }}</code></p>
</body></html>
"""
)


def dossier_html(document: dict[str, Any]) -> str:
    values = document["shap"].get("values") or {}
    bars = sorted(values.items(), key=lambda item: -abs(item[1]))
    scale = max((abs(v) for _, v in bars), default=1.0) or 1.0
    return _DOSSIER.render(d=document, bars=bars, scale=scale, style=_STYLE)


_CARD = _ENV.from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Model card {{ c.model }} v{{ c.version }}</title><style>{{ style }}</style></head>
<body>
<h1>Model card: {{ c.model }} v{{ c.version }}</h1>
<p>{{ c.description }}</p>
<table>
<tr><th>intended use</th><td>{{ c.intended_use or "not stated in the spec" }}</td></tr>
<tr><th>stage</th><td>{{ c.stage }}</td></tr>
<tr><th>owner</th><td><code>{{ c.owner }}</code></td></tr>
<tr><th>created</th><td>{{ c.created_at }}</td></tr>
<tr><th>decision threshold</th><td>{{ c.threshold }}</td></tr>
</table>

<h2>Data</h2>
<p>{{ c.data.name }} v{{ c.data.version }}: {{ c.data.repo }}:{{ c.data.path }} at commit
<code>{{ c.data.commit }}</code>, {{ c.data.row_count }} rows, md5 <code>{{ c.data.md5 }}</code>,
sha256 <code>{{ c.data.sha256 }}</code>.</p>

<h2>Features</h2>
<table><tr><th>name</th><th>type</th><th>description</th><th>changeable</th></tr>
{% for f in c.features %}
<tr><td>{{ f.name }}</td><td>{{ f.type }}</td><td>{{ f.description }}</td><td>{{ "no" if f.immutable else "yes" }}</td></tr>
{% endfor %}</table>
<p class="muted">Protected attributes (never model inputs): {{ c.protected | map(attribute="name") | join(", ") or "none" }}.</p>

<h2>Training metrics</h2>
<table><tr><th>split</th><th>n</th><th>ROC AUC</th><th>accuracy</th><th>Brier</th><th>selection rate</th></tr>
{% for split, m in c.metrics.items() if m is mapping and m.n is defined %}
<tr><td>{{ split }}</td><td>{{ m.n }}</td><td class="metric">{{ "%.4f" | format(m.roc_auc) if m.roc_auc is not none else "" }}</td>
<td>{{ "%.4f" | format(m.accuracy) if m.accuracy is not none else "" }}</td><td>{{ "%.4f" | format(m.brier) if m.brier is not none else "" }}</td>
<td>{{ "%.4f" | format(m.selection_rate) if m.selection_rate is not none else "" }}</td></tr>
{% endfor %}</table>
{% for attribute, groups in c.metrics_by_group.items() %}
<h3>By {{ attribute }} (validation)</h3>
<table><tr><th>group</th><th>n</th><th>selection rate</th><th>true positive rate</th><th>false positive rate</th></tr>
{% for group, m in groups.items() %}
{% if m.suppressed %}
<tr class="suppressed muted"><td colspan="5">Groups with {{ m.reason }}: withheld</td></tr>
{% else %}
<tr><td>{{ group }}{{ " *" if m.below_reporting_threshold }}</td><td>{{ m.n }}</td><td>{{ "%.4f" | format(m.selection_rate) if m.selection_rate is not none else "" }}</td>
<td>{{ "%.4f" | format(m.true_positive_rate) if m.true_positive_rate is not none else "" }}</td>
<td>{{ "%.4f" | format(m.false_positive_rate) if m.false_positive_rate is not none else "" }}</td></tr>
{% endif %}
{% endfor %}</table>
{% endfor %}

<h2>Live fairness</h2>
{% for r in c.live_fairness %}
<p>Endpoint {{ r.endpoint }}: {{ r.n }} logged decisions.</p>
<table><tr><th>group</th><th>n</th><th>selection rate</th></tr>
{% for g in r.groups %}
{% if g.suppressed %}
<tr class="suppressed muted"><td colspan="3">Groups with {{ g.reason }}: withheld</td></tr>
{% else %}
<tr><td>{{ g.group }}{{ " *" if g.below_reporting_threshold }}</td><td>{{ g.n }}</td><td>{{ "%.4f" | format(g.selection_rate) if g.selection_rate is not none else "" }}</td></tr>
{% endif %}
{% endfor %}</table>
{% else %}<p>No logged decisions yet.</p>{% endfor %}
{% if marked %}
<p class="muted">* Fewer than {{ c.reporting_threshold }} people: below the reporting threshold. Only
compliance and admin see such groups' figures.</p>
{% endif %}

<h2>Gate</h2>
<p class="{{ 'ok' if c.gate and c.gate.passed else 'bad' }}">{{ c.gate.rule if c.gate else "no gate" }}:
{{ "passed" if c.gate and c.gate.passed else "failed" }}{% if c.gate and c.gate.value is not none %} ({{ "%.4f" | format(c.gate.value) }}){% endif %}.</p>

<h2>Lineage</h2>
<table>
{% for key in ["estimator", "artifact_sha256", "fingerprint", "run_id", "trained_at"] %}
<tr><th>{{ key }}</th><td><code>{{ c.lineage[key] }}</code></td></tr>
{% endfor %}
<tr><th>seeds</th><td>{{ c.lineage.seeds }}</td></tr>
<tr><th>code</th><td>{{ c.lineage.code }}</td></tr>
</table>

<h2>Rebuild</h2>
<p>{% if c.rebuild %}Last rebuild {{ c.rebuild.id }}: <strong>{{ c.rebuild.verdict }}</strong> ({{ c.rebuild.finished_at }}).{% else %}Never rebuilt.{% endif %}</p>
</body></html>
"""
)


def card_html(card: dict[str, Any]) -> str:
    rows = [m for groups in card["metrics_by_group"].values() for m in groups.values()]
    rows += [g for report in card["live_fairness"] for g in report["groups"]]
    marked = any(row.get("below_reporting_threshold") and not row.get("suppressed") for row in rows)
    return _CARD.render(c=card, marked=marked, style=_STYLE)
