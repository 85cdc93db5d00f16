"""HTML renderings of the JSON documents, self-contained (no scripts, no external files).

Every value is escaped by Jinja's autoescaping; charts are inline SVG drawn from the numbers the
JSON holds, so the page shows exactly the figures the JSON has. Pages are written for a person:
a decision in words ("denied", with its class beside it), numbers rounded for reading (the exact
value is in the JSON, and in the cell's title), a missing value as "missing", a yes/no as a word,
a mapping as a list; never a Python representation (``{'split': 7}``, ``True``, ``None``).
"""

from __future__ import annotations

from collections.abc import Mapping
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

VERDICT_CLASS = {"holds": "ok", "violated": "bad", "not_assessable": "muted", None: "muted"}


def group_name(group: Any) -> str:
    """A fairness group ({"sex": "F", "age": "[18, 25)"}) as people read it: sex=F, age=[18, 25)."""
    if isinstance(group, dict):
        return ", ".join(f"{k}={v}" for k, v in group.items())
    return "" if group is None else str(group)


def readable(value: Any, missing: str = "not recorded") -> str:
    """Any JSON value as a person reads it: yes/no, a list for a mapping or a sequence."""
    if value is None:
        return missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, Mapping):
        if not value:
            return "none"
        return ", ".join(
            f"{k} {readable(v, missing)}"
            if not isinstance(v, Mapping)
            else f"{k} ({readable(v, missing)})"
            for k, v in value.items()
        )
    if isinstance(value, list | tuple):
        return ", ".join(readable(v, missing) for v in value) if value else "none"
    return str(value)


def number(value: Any, digits: int = 4, missing: str = "") -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return missing if value is None else readable(value)
    return f"{value:.{digits}f}"


def interval(pair: Any, digits: int = 3) -> str:
    if not isinstance(pair, list | tuple) or len(pair) != 2 or None in pair:
        return ""
    return f"{pair[0]:.{digits}f} to {pair[1]:.{digits}f}"


_ENV.filters["group_name"] = group_name
_ENV.filters["readable"] = readable
_ENV.filters["number"] = number
_ENV.filters["interval"] = interval
_ENV.filters["yesno"] = lambda value: readable(value, "not known")

_DOSSIER = _ENV.from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Decision dossier {{ d.decision.decision_id }}</title><style>{{ style }}</style></head>
<body>
{% set w = d.in_words %}
{% set m = d.model or {} %}
<h1>Decision dossier</h1>
<p class="muted">Decision <code>{{ d.decision.decision_id }}</code>, made {{ d.decision.created_at }}
by {{ d.decision.model.name }} v{{ d.decision.model.version }} on endpoint
{{ d.decision.endpoint }} (route {{ d.decision.route | readable }}).</p>

<h2>The decision</h2>
<p class="decision-in-words"><strong class="{{ 'ok' if w.favourable else 'bad' }}">{{ w.text }}</strong></p>
<table>
<tr><th>decision</th><td id="label">{{ w.decision or "no decision" }} <span class="muted">(class {{ d.decision.label | readable }})</span></td></tr>
<tr><th>score</th><td id="score" title="exact score {{ d.decision.score }}, threshold {{ w.threshold }}">{% if w.score_shown %}{{ w.score_shown }} ({{ w.rule }}){% else %}no score{% endif %}</td></tr>
<tr><th>subject</th><td>{{ d.decision.subject_id or "not given" }}</td></tr>
<tr><th>out of distribution</th><td id="outlier">{{ w.outlier.text }}</td></tr>
</table>
<h3>The input</h3>
<table><tr><th>feature</th><th>value</th><th>description</th></tr>
{% for f in w.features %}
<tr><td>{{ f.name }}{% if f.also_protected %} <span class="muted">(also a protected attribute)</span>{% endif %}</td><td>{{ f.text }}</td><td class="muted">{{ f.description }}</td></tr>
{% endfor %}
{% for name, value in (d.decision.context or {}).items() %}
<tr><td>{{ name }} <span class="muted">(context)</span></td><td>{{ value | readable("missing") }}</td><td></td></tr>
{% endfor %}
</table>
{% if d.redacted %}<p class="muted">Context withheld for this role: {{ d.redacted | join(", ") }}.</p>{% endif %}

<h2>Recorded outcome</h2>
{% if d.outcome %}
<p id="outcome">{{ d.outcome.in_words }}, observed {{ d.outcome.observed_at }}; recorded
{{ d.outcome.recorded_at }} by key <code>{{ d.outcome.recorded_by }}</code>{% if d.outcome.earlier_records %}
(it replaces {{ d.outcome.earlier_records }} earlier record{{ "s" if d.outcome.earlier_records > 1 }}){% endif %}.</p>
{% else %}<p id="outcome">No outcome recorded yet.</p>{% endif %}

<h2>Principal reasons</h2>
<ol>
{% for r in d.reasons.reasons %}
<li><strong>{{ r.code }}</strong>: {{ r.text }} <span class="muted">({{ r.feature }}: {{ r.value_label or (r.value | readable("missing")) }}; contribution {{ r.contribution | number }})</span></li>
{% else %}<li>No adverse reasons: the decision was {{ w.decision or "favourable" }}.</li>
{% endfor %}
</ol>

<h2>What drove the score (SHAP, {{ d.shap.space | readable }})</h2>
<svg width="640" height="{{ 24 * bars | length + 10 }}" role="img" aria-label="SHAP attributions">
{% for name, value in bars %}
{% set width = (value | abs) / scale * 250 %}
<text x="0" y="{{ 24 * loop.index0 + 17 }}" font-size="13">{{ name }}</text>
<rect x="{{ 380 if value >= 0 else 380 - width }}" y="{{ 24 * loop.index0 + 5 }}" width="{{ width }}"
 height="16" fill="{{ '#2f6fb0' if value >= 0 else '#c0392b' }}"><title>{{ value }}</title></rect>
<text x="{{ 640 - 5 }}" y="{{ 24 * loop.index0 + 17 }}" font-size="12" text-anchor="end">{{ "%.4f" | format(value) }}</text>
{% endfor %}
</svg>
<p class="muted">Base value {{ d.shap.base_value | number }}, output {{ d.shap.output | number }}; {{ d.shap.method | readable }}.</p>

<h2>What would have to change</h2>
{% set cf = d.counterfactual %}
{% if cf.best %}
<table><tr><th>feature</th><th>from</th><th>to</th></tr>
{% for change in cf.best_in_words.changes %}
<tr><td>{{ change.feature }}</td><td>{{ change["from"] }}</td><td>{{ change["to"] }}</td></tr>
{% endfor %}</table>
<p>With these changes the decision would be {{ cf.best_in_words.decision }}: {{ cf.best_in_words.score_text }}.</p>
{% set p = cf.best.plausibility %}
{% if p and p.nearest_target_class_distance is not none %}
<p class="muted">Plausibility: {{ p.nearest_target_class_distance | number(2) }} spreads from the nearest training applicant
with that decision{% if p.distance_quantile is not none %} (further than {{ "%.0f" | format(100 * p.distance_quantile) }}% of such applicants are from each other){% endif %}.</p>
{% endif %}
{% else %}<p>{{ cf.message or "No change within the model's constraints was found that flips this decision." }}</p>{% endif %}
{% if cf.shortfall_reason %}<p class="muted">{{ cf.shortfall_reason }}.</p>{% endif %}

<h2>Anchor rule</h2>
{% set a = d.anchor %}
{% if a %}
{% set reliable = a.reliable if a.reliable is defined else a.meets_threshold %}
<p id="anchor">While {{ a.rule }}, the decision is {{ w.decision or "the same" }}.
{% if reliable %}<span class="ok">A reliable rule</span>: precision {{ a.precision | number(3) }} on {{ a.coverage_rows | readable }} training rows
(95% lower bound {{ a.precision_lower_bound | number(3, "not computed") }}, threshold {{ a.threshold | number(2) }}).
{% else %}<span class="bad">{{ a.message or "No reliable rule." }}</span>{% endif %}</p>
<p class="muted">Computed {{ a.computed_at }} with seed {{ a.seed | readable }}.</p>
{% else %}<p class="muted">No anchor rule has been computed for this decision.</p>{% endif %}

<h2>Robustness</h2>
{% set r = d.robustness %}
{% if r %}
<p id="robustness"><strong class="{{ 'bad' if r.verdict == 'fragile' else 'ok' }}">{{ r.verdict | readable }}</strong>: {{ r.message | readable }}.</p>
{% if r.perturbation_in_words %}
<table><tr><th>feature</th><th>from</th><th>to</th></tr>
{% for change in r.perturbation_in_words %}
<tr><td>{{ change.feature }}</td><td>{{ change["from"] }}</td><td>{{ change["to"] }}</td></tr>
{% endfor %}</table>
{% endif %}
<p class="muted">Computed {{ r.computed_at }} with seed {{ r.seed | readable }}.</p>
{% else %}<p class="muted">No robustness assessment has been computed for this decision.</p>{% endif %}

<h2>Replay</h2>
<p class="{{ 'ok' if d.replay.reproduces_logged_decision else 'bad' }}">The logged input, scored again on the same
model version, gives {{ d.replay.replayed_decision }}, score {{ d.replay.replay.score | number }}:
{{ "it reproduces the logged decision exactly" if d.replay.reproduces_logged_decision else "it does NOT reproduce the logged decision" }}.
The replay is not logged as a decision.</p>

<h2>Fairness of this model version on {{ d.fairness.endpoint }}</h2>
{% set f = d.fairness %}
{% if f.withheld %}
<p class="muted" id="fairness">Withheld: {{ f.reason }}.</p>
{% else %}
{% for a in f.attributes %}
<h3>By {{ a.attribute }}</h3>
{% if a.not_computed %}
<p class="muted">Not computed: {{ a.not_computed }}</p>
{% else %}
<p class="fairness-verdict">Four-fifths rule over {{ a.n }} decisions: <strong class="{{ verdict_class.get(a.four_fifths_verdict, 'muted') }}">{{ a.four_fifths_verdict | readable }}</strong>{% if a.disparate_impact_ratio_min is not none %};
lowest disparate impact ratio {{ a.disparate_impact_ratio_min | number(3) }}{% if a.disparate_impact_ratio_min_ci95 %} (95% CI {{ a.disparate_impact_ratio_min_ci95 | interval }}){% endif %}{% endif %}.</p>
<ul class="verdict-reasons">{% for reason in a.verdict_reasons or [] %}<li>{{ reason }}</li>{% endfor %}</ul>
<table><tr><th>group</th><th>n</th><th>selection rate</th><th>disparate impact ratio (95% CI)</th></tr>
{% for g in a.groups %}
<tr><td>{{ g.group | group_name }}{{ " †" if g.below_minimum_size }}</td><td>{{ g.n }}</td><td>{{ g.selection_rate | number }}</td>
<td>{{ g.disparate_impact_ratio | number(3) }}{% if g.disparate_impact_ratio_ci95 %} ({{ g.disparate_impact_ratio_ci95 | interval }}){% endif %}</td></tr>
{% endfor %}</table>
{% endif %}
{% else %}<p>This model version declares no protected attributes.</p>{% endfor %}
{% if f.attributes | map(attribute="groups") | select | sum(start=[]) | selectattr("below_minimum_size") | list %}
<p class="muted">† Fewer than {{ f.min_group_size }} decisions: below the minimum group size; shown and compared, but no verdict rests on it.</p>
{% endif %}
{% endif %}

<h2>The model</h2>
{% set detector = m.outlier_detector or {} %}
<table>
{% for label, key in [("estimator", "estimator"), ("artifact sha256", "artifact_sha256"), ("fingerprint", "fingerprint"), ("stage", "stage"), ("trained at", "trained_at")] %}
<tr><th>{{ label }}</th><td><code>{{ m[key] | readable }}</code></td></tr>
{% endfor %}
<tr><th>data</th><td>{{ m.dataset.name | readable }} v{{ m.dataset.version | readable }}, commit <code>{{ m.dataset.commit | readable }}</code>, sha256 <code>{{ m.dataset.sha256 | readable }}</code></td></tr>
<tr><th>seeds</th><td>{{ m.seeds | readable }}</td></tr>
<tr><th>gate</th><td>{% if m.gate %}{{ m.gate.rule }}: {{ "passed" if m.gate.passed else "failed" }}{% else %}no gate recorded{% endif %}</td></tr>
<tr><th>out-of-distribution detector</th><td>{% if detector.method %}{{ detector.method }}, threshold {{ detector.threshold | number(2) }} (the {{ detector.quantile | readable }} quantile of the training rows' scores){% else %}none recorded{% endif %}</td></tr>
<tr><th>latest rebuild</th><td id="rebuild">{% if d.rebuild %}{{ d.rebuild.verdict }} (rebuild {{ d.rebuild.id }}, finished {{ d.rebuild.finished_at | readable }}){% else %}never rebuilt{% endif %}</td></tr>
</table>

<h2>Integrity of this record</h2>
<p class="{{ 'ok' if d.chain.verified else 'bad' }}">Record {{ d.chain.seq }} of the decision log
{{ "verifies" if d.chain.verified else "does NOT verify" }}: its content matches its hash: {{ d.chain.content_matches_hash | yesno }};
its record hash matches: {{ d.chain.record_hash_matches | yesno }}; it is linked to the previous record: {{ d.chain.linked_to_previous | yesno }};
{% if d.chain.linked_to_next is none %}no record follows it yet{% else %}to the next: {{ d.chain.linked_to_next | yesno }}{% endif %}.
{% if d.chain.signed_checkpoint %}A signed checkpoint at record {{ d.chain.signed_checkpoint.seq }} ({{ d.chain.signed_checkpoint.signed_at }}) covers it.{% endif %}</p>
<p class="muted">Record hash <code>{{ d.chain.record_hash }}</code></p>
</body></html>
"""
)


def dossier_html(document: dict[str, Any]) -> str:
    values = document["shap"].get("values") or {}
    bars = sorted(values.items(), key=lambda item: -abs(item[1]))
    scale = max((abs(v) for _, v in bars), default=1.0) or 1.0
    return _DOSSIER.render(
        d=document, bars=bars, scale=scale, style=_STYLE, verdict_class=VERDICT_CLASS
    )


_CARD = _ENV.from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Model card {{ c.model }} v{{ c.version }}</title><style>{{ style }}</style></head>
<body>
{% macro withheld_row(row, columns) %}
<tr class="suppressed muted"><td>Groups with {{ row.reason }}: withheld</td><td>fewer than {{ row.fewer_than }}</td><td colspan="{{ columns - 2 }}">withheld</td></tr>
{% endmacro %}
{% macro live_report(r) %}
{% if r.not_computed %}
<p class="muted">Not computed: {{ r.not_computed }}</p>
{% else %}
<p>Endpoint {{ r.endpoint }}: {{ r.n }} logged decisions.</p>
{% if r.comparison_suppressed %}
<p class="fairness-verdict muted">Four-fifths rule: withheld (the comparison uses groups below the reporting threshold; compliance sees it).</p>
{% else %}
<p class="fairness-verdict">Four-fifths rule: <strong class="{{ verdict_class.get(r.four_fifths_verdict, 'muted') }}">{{ r.four_fifths_verdict | readable }}</strong>.</p>
<ul class="verdict-reasons">{% for reason in r.verdict_reasons or [] %}<li>{{ reason }}</li>{% endfor %}</ul>
<p class="fairness-verdict">Equal opportunity: <strong class="{{ verdict_class.get(r.equal_opportunity_verdict, 'muted') }}">{{ r.equal_opportunity_verdict | readable }}</strong>.</p>
<ul class="verdict-reasons">{% for reason in r.equal_opportunity_verdict_reasons or [] %}<li>{{ reason }}</li>{% endfor %}</ul>
{% endif %}
<table><tr><th>group</th><th>n</th><th>selection rate</th><th>disparate impact ratio (95% CI)</th><th>four-fifths</th></tr>
{% for g in r.groups %}
{% if g.suppressed %}
{{ withheld_row(g, 5) }}
{% else %}
<tr><td>{{ g.group | group_name }}{{ " †" if g.below_minimum_size }}{{ " *" if g.below_reporting_threshold }}</td><td>{{ g.n }}</td><td>{{ g.selection_rate | number }}</td>
<td>{% if g.disparate_impact_ratio is not none %}{{ "%.3f" | format(g.disparate_impact_ratio) }}{% if g.disparate_impact_ratio_ci95 %} ({{ "%.3f" | format(g.disparate_impact_ratio_ci95[0]) }} to {{ "%.3f" | format(g.disparate_impact_ratio_ci95[1]) }}){% elif g.group == r.most_favoured_group %} (reference){% endif %}{% endif %}</td>
<td>{{ g.four_fifths_verdict or "" }}</td></tr>
{% endif %}
{% endfor %}</table>
{% if r.groups | selectattr("below_minimum_size") | list %}
<p class="muted">† Fewer than {{ r.min_group_size }} decisions: below the minimum group size. Shown and compared, but no verdict rests on it.</p>
{% endif %}
{% endif %}
{% endmacro %}
<h1>Model card: {{ c.model }} v{{ c.version }}</h1>
<p>{{ c.description or "" }}</p>
<table>
<tr><th>intended use</th><td>{{ c.intended_use or "not stated in the spec" }}</td></tr>
<tr><th>stage</th><td>{{ c.stage }}</td></tr>
<tr><th>owner</th><td id="owner">{{ c.owner_detail.text if c.owner_detail else c.owner }}</td></tr>
<tr><th>created</th><td>{{ c.created_at }}</td></tr>
<tr><th>decision</th><td id="decision-rule">{% if c.decision_rule %}{{ c.decision_rule.text }}{% else %}{{ c.threshold | readable }}{% endif %}</td></tr>
</table>

<h2>Data</h2>
<p>{{ c.data.name | readable }} v{{ c.data.version | readable }}: {{ c.data.repo | readable }}:{{ c.data.path | readable }} at commit
<code>{{ c.data.commit | readable }}</code>, {{ c.data.row_count | readable }} rows, md5 <code>{{ c.data.md5 | readable }}</code>,
sha256 <code>{{ c.data.sha256 | readable }}</code>.</p>

<h2>Features</h2>
<table><tr><th>name</th><th>type</th><th>description</th><th>changeable</th><th>missing values</th></tr>
{% for f in c.features %}
<tr><td>{{ f.name }}{% if f.also_protected %} <strong class="protected-feature">(also a protected attribute)</strong>{% endif %}</td><td>{{ f.type }}</td>
<td>{{ f.description or "" }}{% if f.also_protected %}<br><span class="muted">Why a protected attribute is a model input: {{ f.protected_justification or "no justification recorded" }}</span>{% endif %}</td>
<td>{{ "no" if f.immutable else "yes" }}</td><td class="missing-policy">{{ f.missing_value_policy or "not recorded" }}</td></tr>
{% endfor %}</table>
{% set inputs = c.protected | selectattr("feature") | map(attribute="name") | list %}
<p class="muted">Protected attributes: {{ c.protected | map(attribute="name") | join(", ") or "none" }}.
{% if inputs %}Also model inputs (audited as protected): {{ inputs | join(", ") }}; every other one is never a model input.{% else %}No protected attribute is a model input.{% endif %}</p>

<h2>Proxies</h2>
{% if c.proxies %}
<ul class="proxies">{% for line in c.proxies.summary %}<li>{{ line }}</li>{% else %}<li>No proxy measured.</li>{% endfor %}</ul>
<p class="muted">A feature predicting a protected attribute with an out-of-sample AUC of {{ c.proxies.threshold | number(2) }} or more is named; 0.5 means it tells nothing.</p>
{% else %}<p class="muted">No proxy report was recorded for this version.</p>{% endif %}

<h2>Training metrics</h2>
<table><tr><th>split</th><th>n</th><th>ROC AUC</th><th>accuracy</th><th>Brier</th><th>selection rate</th></tr>
{% for split, m in c.metrics.items() if m is mapping and m.n is defined %}
<tr><td>{{ split }}</td><td>{{ m.n }}</td><td class="metric">{{ "%.4f" | format(m.roc_auc) if m.roc_auc is not none else "" }}</td>
<td>{{ "%.4f" | format(m.accuracy) if m.accuracy is not none else "" }}</td><td>{{ "%.4f" | format(m.brier) if m.brier is not none else "" }}</td>
<td>{{ "%.4f" | format(m.selection_rate) if m.selection_rate is not none else "" }}</td></tr>
{% endfor %}</table>
{% set o = c.overfitting %}
{% if o %}
<p id="overfitting" class="{{ 'bad' if o.flagged else ('ok' if o.flagged is sameas false else 'muted') }}">{{ o.text }}</p>
{% endif %}
{% for attribute, groups in c.metrics_by_group.items() %}
<h3>By {{ attribute }} (validation)</h3>
<table><tr><th>group</th><th>n</th><th>selection rate</th><th>true positive rate</th><th>false positive rate</th></tr>
{% for group, m in groups.items() %}
{% if m.suppressed %}
{{ withheld_row(m, 5) }}
{% else %}
<tr><td>{{ group }}{{ " *" if m.below_reporting_threshold }}</td><td>{{ m.n }}</td><td>{{ "%.4f" | format(m.selection_rate) if m.selection_rate is not none else "" }}</td>
<td>{{ "%.4f" | format(m.true_positive_rate) if m.true_positive_rate is not none else "" }}</td>
<td>{{ "%.4f" | format(m.false_positive_rate) if m.false_positive_rate is not none else "" }}</td></tr>
{% endif %}
{% endfor %}</table>
{% endfor %}

<h2>Live fairness</h2>
{% for r in c.live_fairness %}
{% if c.live_fairness_by_attribute | length > 1 %}<h3>{{ r.endpoint }}: by {{ (r.attributes or []) | map(attribute="name") | join(" and ") }} together</h3>{% endif %}
{{ live_report(r) }}
{% else %}<p>No logged decisions yet.</p>{% endfor %}
{% if c.live_fairness_by_attribute | length > 1 %}
{% for r in c.live_fairness_by_attribute %}
<h3 class="by-attribute">{{ r.endpoint }}: by {{ r.attribute }} alone</h3>
{{ live_report(r) }}
{% endfor %}
{% endif %}
{% if marked %}
<p class="muted">* Fewer than {{ c.reporting_threshold }} people: below the reporting threshold. Only
compliance and admin see such groups' figures.</p>
{% endif %}

{% if c.scorecard %}{% set sc = c.scorecard %}
<h2>Scorecard</h2>
<p>{{ sc.binning }} binning. {{ sc.base_score | readable }} points at odds of {{ sc.base_odds | readable }} to 1
for the favourable outcome; {{ sc.pdo | readable }} points double the odds. A decision's score is the sum of
its bins' points; its reasons are the features where it lost the most points against the best bin.</p>
{% for f in sc.features %}
<table><caption>{{ f.feature }}{% if f.direction %} (rate {{ f.direction }} across its bins){% endif %}: at most {{ "%.1f" | format(f.max_points) }} points</caption>
<tr><th>bin</th><th>training rows</th><th>positive rate</th><th>weight of evidence</th><th>points</th></tr>
{% for b in f.bins %}<tr><td>{{ b.label }}</td><td>{{ b.rows }}</td><td>{{ "%.3f" | format(b.positive_rate) if b.positive_rate is not none else "none" }}</td><td>{{ "%.3f" | format(b.woe) }}</td><td>{{ "%.1f" | format(b.points) }}</td></tr>
{% endfor %}</table>
{% endfor %}
{% endif %}

<h2>Gate</h2>
<p class="{{ 'ok' if c.gate and c.gate.passed else 'bad' }}">{{ c.gate.rule if c.gate else "no gate" }}:
{{ "passed" if c.gate and c.gate.passed else "failed" }}{% if c.gate and c.gate.value is not none %} ({{ "%.4f" | format(c.gate.value) }}){% endif %}.</p>

<h2>Lineage</h2>
<table>
{% for label, key in [("estimator", "estimator"), ("artifact sha256", "artifact_sha256"), ("fingerprint", "fingerprint"), ("run", "run_id"), ("trained at", "trained_at")] %}
<tr><th>{{ label }}</th><td><code>{{ c.lineage[key] | readable }}</code></td></tr>
{% endfor %}
<tr><th>seeds</th><td>{{ c.lineage.seeds | readable }}</td></tr>
<tr><th>code</th><td>{{ c.lineage.code | readable }}</td></tr>
</table>

<h2>Rebuild</h2>
<p>{% if c.rebuild %}Last rebuild {{ c.rebuild.id }}: <strong>{{ c.rebuild.verdict }}</strong> ({{ c.rebuild.finished_at | readable }}).{% else %}Never rebuilt.{% endif %}</p>
</body></html>
"""
)


def card_html(card: dict[str, Any]) -> str:
    rows = [m for groups in card["metrics_by_group"].values() for m in groups.values()]
    reports = [*card["live_fairness"], *card.get("live_fairness_by_attribute", [])]
    rows += [g for report in reports for g in report.get("groups") or []]
    marked = any(row.get("below_reporting_threshold") and not row.get("suppressed") for row in rows)
    return _CARD.render(c=card, marked=marked, style=_STYLE, verdict_class=VERDICT_CLASS)


_ANNEX_IV = _ENV.from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Technical documentation: {{ d.model }} v{{ d.version }}</title><style>{{ style }}</style></head>
<body>
<h1>Technical documentation: {{ d.model }} v{{ d.version }}</h1>
<p class="muted">{{ d.regulation }}. Assembled by govern on {{ d.generated_at }} from its own
records; each section says what is evidenced, by which record, and what is missing.</p>
<table><tr><th>section</th><th>where the Act asks</th><th>status</th></tr>
{% for s in d.sections %}<tr><td><a href="#{{ s.key }}">{{ s.title }}</a></td><td>{{ s.article }}</td>
<td class="{{ 'ok' if s.status == 'evidenced' else ('bad' if s.status == 'missing' else '') }}">{{ s.status }}</td></tr>
{% endfor %}</table>
{% for s in d.sections %}
<h2 id="{{ s.key }}">{{ s.title }} <span class="muted">({{ s.article }}): {{ s.status }}</span></h2>
{% if s.missing %}<p>Missing:</p><ul>{% for m in s.missing %}<li>{{ m }}</li>{% endfor %}</ul>{% endif %}
<p>Records: {% for r in s.records %}<code>{{ r }}</code>{% if not loop.last %}, {% endif %}{% endfor %}</p>
<table>{% for k, v in s.evidence.items() %}<tr><th>{{ k | replace("_", " ") }}</th><td><pre>{{ v | tojson(indent=1) if v is mapping or (v is iterable and v is not string) else (v | readable) }}</pre></td></tr>{% endfor %}</table>
{% endfor %}
</body></html>"""
)


def annex_iv_html(document: dict[str, Any]) -> str:
    return _ANNEX_IV.render(d=document, style=_STYLE)
