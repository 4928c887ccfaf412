"""The first screen of a report: a verdict card coloured by outcome with the facts a change reviewer
needs, and the data-integrity table that proves nothing was lost. Plain HTML fragments (every value
escaped), placed by plugins/report.py through pytest-html's hooks and styled by plugins/report.css."""

from __future__ import annotations

from html import escape

from runbook import change_record
from runbook.change_record import TableProof

MiB = 1024 * 1024


def tone(verdict: str) -> str:
    """The card's colour class: good, rolled back, bad, neutral or maintenance."""
    if verdict in ("UPGRADED", "HEALTHY", "READY", "PASSED"):
        return "good"
    if verdict.startswith(change_record.ROLLED_BACK):
        return "rolledback"
    if verdict in ("NOT STARTED", "IN PROGRESS"):
        return "neutral"
    if verdict == "MAINTENANCE":
        return "maintenance"
    return "bad"  # FAILED - MANUAL ACTION, UPGRADE DIED, UNHEALTHY, NOT READY, FAILED


def _fact(label: str, value: str) -> str:
    return f"<tr><th>{escape(label)}</th><td>{value}</td></tr>"


def _short(value: str | None, commit: bool) -> str:
    if value is None:
        return '<span class="unknown">not recorded</span>'
    return f'<code title="{escape(value)}">{escape(value[:12] if commit else value)}</code>'


def moves_table(journal: dict) -> str:
    rows = "".join(
        f"<tr><th>{escape(move.what)}</th><td>{_short(move.before, move.what == 'git commit')}</td>"
        f"<td>{_short(move.after, move.what == 'git commit')}</td></tr>"
        for move in change_record.moves(journal))
    left = "after rollback" if journal.get("rollback") else "after"
    return f'<table class="moves"><tr><th></th><th>before</th><th>{left}</th></tr>{rows}</table>'


def _backup(recorded: dict | None) -> str:
    if not recorded:
        return "none taken"
    verification = recorded.get("verification") or {}
    how = ("restored into a scratch database and compared table by table" if verification.get("restored")
           else f"listed by pg_restore ({verification.get('listed_entries')} entries)" if verification
           else "not verified")
    return (f"<code>{escape(recorded['dump'])}</code>, {recorded['size'] / MiB:.1f} MiB, "
            f"sha256 <code>{escape(recorded['sha256'])}</code>; {escape(how)}")


def _downtime(downtime: dict | None) -> str:
    if not downtime:
        return "not measured"
    return (f"<strong>{downtime['downtime_total_s']:.1f} s</strong> in {downtime['downtime_outages']} outage(s), "
            f"longest {downtime['downtime_longest_s']:.1f} s")


def _kept_volume(pg_major: dict | None) -> str:
    """A finished major upgrade keeps the old cluster's volume: the way back, and disk space to reclaim later."""
    if not pg_major or not pg_major.get("old_volume_kept_until"):
        return ""
    return (f"<code>{escape(pg_major['old_volume'])}</code> (PostgreSQL {escape(str(pg_major['facts']['server_version']))}) "
            f"kept untouched until {escape(pg_major['old_volume_kept_until'])}; "
            "<code>--component postgres --pg-rollback</code> goes back to it")


def _rollback(rollback: dict) -> str:
    state = "succeeded" if rollback["ok"] else "FAILED"
    seconds = sum(action["seconds"] for action in rollback["actions"])
    actions = "".join(f"<li><span class=\"secs\">{action['seconds']:.1f} s</span> "
                      f"{'ok' if action['ok'] else '<strong>FAILED</strong>'} {escape(action['name'])}</li>"
                      for action in rollback["actions"])
    problem = (f"<div>{'escalated because' if rollback['ok'] else 'last problem'}: {escape(rollback['problem'])}</div>"
               if rollback["problem"] else "")
    return (f"tier <strong>{escape(rollback['tier'])}</strong> (chosen: {escape(rollback['requested'])}) {state} "
            f"in {seconds:.1f} s{problem}<ol class=\"actions\">{actions}</ol>")


def upgrade_card(journal: dict, verdict: str, title: str, notes: dict[str, str] | None = None) -> str:
    window = f"{escape(str(journal.get('started')))} &rarr; {escape(str(journal.get('finished') or 'still running'))}"
    facts = [_fact(label, escape(text)) for label, text in (notes or {}).items()]
    facts += [_fact("Window (UTC)", window), _fact("User-visible downtime", _downtime(journal.get("downtime"))),
              _fact("Backup", _backup(journal.get("backup")))]
    kept = _kept_volume(journal.get("pg_major"))
    if kept:
        facts.append(_fact("Old PostgreSQL volume", kept))
    failed = change_record.failed_stage(journal)
    if failed and verdict != "IN PROGRESS":
        facts.append(_fact("Failed stage", f"<strong>{escape(failed['name'])}</strong>: {escape(failed['reason'])}"))
    rollback = journal.get("rollback")
    if rollback:
        facts.append(_fact("Rollback", _rollback(rollback)))
        if rollback["manual_steps"]:
            steps = escape("\n".join(rollback["manual_steps"]))
            facts.append(_fact("Manual steps", "The app is stopped, the database untouched. Restore by hand:"
                                               f"<pre class=\"manual\">{steps}</pre>"))
    return (f'<section id="verdict" class="verdict verdict--{tone(verdict)}">'
            f'<div class="verdict__word">{escape(verdict)}</div><div class="verdict__title">{escape(title)}</div>'
            f'<div class="verdict__body">{moves_table(journal) if journal.get("before") else ""}'
            f'<table class="facts">{"".join(facts)}</table></div>'
            "</section>")


def audit_card(verdict: str, title: str, facts: dict[str, str], failing: list[tuple[str, str]],
               counts: dict[str, int], line: str | None = None) -> str:
    """A pre- or post-flight audit: the verdict, the failing checks named first, then the installation."""
    first = f'<div class="verdict__line">{escape(line)}</div>' if line else ""
    if failing:
        items = "".join(f"<li><strong>{escape(name)}</strong>: {escape(message)}</li>" for name, message in failing)
        first += f'<div class="failing"><div>{len(failing)} check(s) failed:</div><ol>{items}</ol></div>'
    tally = ", ".join(f"{number} {outcome}" for outcome, number in counts.items() if number)
    rows = "".join(_fact(label, f"<code>{escape(value)}</code>") for label, value in facts.items())
    return (f'<section id="verdict" class="verdict verdict--{tone(verdict)}">'
            f'<div class="verdict__word">{escape(verdict)}</div><div class="verdict__title">{escape(title)}</div>'
            f'{first}<div class="verdict__body"><table class="facts">{_fact("Checks", escape(tally or "none run"))}'
            f"{rows}</table></div></section>")


def plan_table(plan: dict) -> str:
    """``--plan``'s stages (what each changes, the rollback if it failed there) and checks, as a table."""
    rows = "".join(
        f"<tr><td>{index}</td><td><strong>{escape(stage['name'])}</strong><br>{escape(stage['title'])}</td>"
        f"<td>{escape(stage['changes'])}</td><td>{escape(stage['if_it_fails'].split(' fails -> ', 1)[-1])}"
        + (f"<ol>{''.join(f'<li>{escape(action)}</li>' for action in stage['rollback_actions'])}</ol>"
           if stage["rollback_actions"] else "") + "</td></tr>"
        for index, stage in enumerate(plan["stages"], 1))
    checks = "".join(f"<li><code>{escape(check['name'])}</code></li>" for check in plan["checks"])
    return (f'<section id="plan"><h2>Plan: {escape(plan["installed"])} &rarr; {escape(plan["target"])} '
            "(nothing was changed)</h2><table class=\"plan\"><thead><tr><th>#</th><th>Stage</th><th>Changes</th>"
            f"<th>If it fails there</th></tr></thead><tbody>{rows}</tbody></table>"
            f"<h3>Pre-flight checks ({len(plan['checks'])}), each must pass first</h3><ol>{checks}</ol></section>")


def integrity_table(proofs: list[TableProof], after_label: str) -> str:
    if not proofs:
        return ""
    unexpected = [proof.table for proof in proofs if not proof.expected]
    headline = (f"{len(unexpected)} table(s) differ unexpectedly: {', '.join(unexpected)}" if unexpected
                else f"all {len(proofs)} tables accounted for")
    rows = "".join(
        f'<tr class="{"ok" if proof.expected else "bad"}"><td><code>{escape(proof.table)}</code></td>'
        f"<td class=\"num\">{'' if proof.rows_before is None else proof.rows_before}</td>"
        f"<td class=\"num\">{'' if proof.rows_after is None else proof.rows_after}</td>"
        f"<td>{'equal' if proof.checksum_equal else 'differs'}</td><td>{escape(proof.note)}</td></tr>"
        for proof in proofs)
    return (f'<section id="data-integrity"><h2>Data integrity: {escape(headline)}</h2>'
            f'<table class="integrity"><tr><th>table</th><th>rows before</th><th>rows {escape(after_label)}</th>'
            f"<th>checksum</th><th>verdict</th></tr>{rows}</table></section>")


def log_tail(container: str, notable: list[str], full: list[str], since: str) -> str:
    """WARNING+ lines and tracebacks first; the whole tail behind an expander."""
    shown = escape("\n".join(notable)) if notable else f"no WARNING, ERROR or traceback in {escape(container)}'s log"
    return (f'<div class="logtail"><div><strong>{escape(container)}</strong>: WARNING and above, and tracebacks, '
            f"since {escape(since)}</div><pre>{shown}</pre><details><summary>full log tail ({len(full)} lines)"
            f"</summary><pre>{escape(chr(10).join(full))}</pre></details></div>")
