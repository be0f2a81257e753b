"""Loading policy files: the format, overrides, and errors that name file, line and rule."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import WriteRules, WriteText, rule

from tickrail.sdk.errors import PolicyError
from tickrail.services.control_plane.guardrails import ACTIONS, SCOPES, PolicySet, check_files

REPO = Path(__file__).resolve().parents[3]
SHIPPED = [
    REPO / "policies" / "default.yaml",
    *sorted((REPO / "policies" / "examples").glob("*.yaml")),
]


def one_problem(path: Path) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        PolicySet.load([path])
    return caught.value


# ---- the format ---------------------------------------------------------------------


@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_parses(rules_file: WriteRules, action: str) -> None:
    policies = PolicySet.load([rules_file(rule("r", "lifetime.count > 1", action=action))])
    assert [r.action for r in policies.rules] == [action]


@pytest.mark.parametrize("scope", SCOPES)
def test_every_scope_parses(rules_file: WriteRules, scope: str) -> None:
    policies = PolicySet.load([rules_file(rule("r", "execution.attempt > 3", scope=scope))])
    assert policies.rules[0].scope == scope


def test_fields_are_kept(rules_file: WriteRules) -> None:
    path = rules_file(
        rule("r", "lifetime.count > 1", description="why", message="what happened"),
        rule("bare", "lifetime.count > 2"),
        rule("described", "lifetime.count > 3", description="it explains"),
    )
    first, bare, described = PolicySet.load([path]).rules
    assert (first.description, first.message, first.file) == ("why", "what happened", str(path))
    assert first.line == 4
    assert bare.message == "guardrail bare fired"
    assert described.message == "it explains"


def test_match_filters_by_tenant_graph_and_node(rules_file: WriteRules) -> None:
    policies = PolicySet.load(
        [
            rules_file(
                rule("everywhere", "lifetime.count > 1"),
                rule("acme-only", "lifetime.count > 1", match={"tenants": ["acme"]}),
                rule("g-plan", "lifetime.count > 1", match={"graphs": ["g"], "nodes": ["plan"]}),
            )
        ]
    )

    def names(tenant: str, graph: str, node: str) -> list[str]:
        return [r.name for r in policies.rules_for(tenant, graph, node)]

    assert names("acme", "g", "plan") == ["everywhere", "acme-only", "g-plan"]
    assert names("globex", "g", "plan") == ["everywhere", "g-plan"]
    assert names("acme", "g", "search") == ["everywhere", "acme-only"]
    assert names("acme", "other", "plan") == ["everywhere", "acme-only"]


def test_tenant_override_replaces_in_place_and_adds(rules_file: WriteRules) -> None:
    defaults = rules_file(
        rule("a", "lifetime.count > 1"),
        rule("b", "lifetime.count > 2"),
        rule("c", "lifetime.count > 3"),
        name="00-default.yaml",
    )
    acme = rules_file(
        rule("extra", "lifetime.count > 9"),
        rule("b", "lifetime.count > 20", action="PAUSE_LIFETIME"),
        name="10-acme.yaml",
        tenant="acme",
    )
    policies = PolicySet.load([defaults, acme])
    acme_rules = policies.rules_for("acme", "g", "n")
    assert [r.name for r in acme_rules] == ["a", "b", "c", "extra"]
    assert acme_rules[1].condition.source == "lifetime.count > 20"
    assert acme_rules[1].tenant == "acme"
    assert acme_rules[1].action == "PAUSE_LIFETIME"
    other = policies.rules_for("globex", "g", "n")
    assert [r.name for r in other] == ["a", "b", "c"]
    assert other[1].condition.source == "lifetime.count > 2"
    assert policies.tenants == ("acme",)


def test_tenant_override_disables_a_default(rules_file: WriteRules) -> None:
    defaults = rules_file(rule("a", "lifetime.count > 1"), rule("b", "lifetime.count > 2"))
    acme = rules_file(name="acme.yaml", tenant="acme", disable=["a"])
    policies = PolicySet.load([defaults, acme])
    assert [r.name for r in policies.rules_for("acme", "g", "n")] == ["b"]
    assert [r.name for r in policies.rules_for("globex", "g", "n")] == ["a", "b"]


def test_disabling_an_unknown_default_is_refused(rules_file: WriteRules) -> None:
    defaults = rules_file(rule("a", "lifetime.count > 1"))
    acme = rules_file(name="acme.yaml", tenant="acme", disable=["typo"])
    with pytest.raises(PolicyError, match="not a default rule") as caught:
        PolicySet.load([defaults, acme])
    assert (caught.value.file, caught.value.line, caught.value.rule) == (str(acme), 5, "typo")


def test_disable_and_override_of_the_same_rule_is_refused(rules_file: WriteRules) -> None:
    defaults = rules_file(rule("a", "lifetime.count > 1"))
    acme = rules_file(rule("a", "lifetime.count > 5"), name="x.yaml", tenant="acme", disable=["a"])
    with pytest.raises(PolicyError, match="both disabled and overridden"):
        PolicySet.load([defaults, acme])


def test_disable_needs_a_tenant(write: WriteText) -> None:
    error = one_problem(
        write(
            """
            apiVersion: tickrail/v1
            kind: GuardrailPolicy
            disable: [a]
            """
        )
    )
    assert "only allowed in a tenant override file" in str(error) and error.line == 3


def test_match_tenants_is_refused_in_a_tenant_file(rules_file: WriteRules) -> None:
    path = rules_file(rule("r", "lifetime.count > 1", match={"tenants": ["globex"]}), tenant="acme")
    assert "match.tenants is not allowed" in str(one_problem(path))


def test_version_is_a_stable_content_hash(tmp_path: Path, rules_file: WriteRules) -> None:
    path = rules_file(rule("a", "lifetime.count > 1"))
    first = PolicySet.load([path]).version
    assert re.fullmatch(r"[0-9a-f]{12}", first)
    copy = tmp_path / "elsewhere" / "copy.yaml"
    copy.parent.mkdir()
    copy.write_bytes(path.read_bytes())
    assert PolicySet.load([copy]).version == first
    path.write_text(path.read_text().replace("> 1", "> 2"))
    assert PolicySet.load([path]).version != first
    assert PolicySet.empty().version != first


def test_empty_set_has_no_rules() -> None:
    empty = PolicySet.empty()
    assert empty.rules == () and empty.rules_for("t", "g", "n") == ()


def test_a_directory_loads_its_yaml_files_sorted_not_recursively(
    tmp_path: Path, rules_file: WriteRules
) -> None:
    rules_file(rule("second", "lifetime.count > 1"), name="b.yaml")
    rules_file(rule("first", "lifetime.count > 1"), name="a.yml")
    (tmp_path / "notes.txt").write_text("not a policy")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "ignored.yaml").write_text("not: [valid")
    policies = PolicySet.load([tmp_path])
    assert [r.name for r in policies.rules] == ["first", "second"]


def test_a_missing_path_is_a_problem(tmp_path: Path) -> None:
    assert check_files([tmp_path / "nope.yaml"]) == [
        f"{tmp_path / 'nope.yaml'}: no such file or directory"
    ]


# ---- errors name file, line and rule ----------------------------------------------------

HEADER = "apiVersion: tickrail/v1\nkind: GuardrailPolicy\nrules:\n"


def test_bad_yaml_names_the_line(write: WriteText) -> None:
    path = write(HEADER + "  - name: a\n    scope: [lifetime\n    action: ABORT_LIFETIME\n")
    error = one_problem(path)
    assert error.file == str(path) and error.line == 6
    assert str(error).startswith(f"{path}, line 6: invalid YAML")


def test_unknown_field_names_its_line_and_rule(write: WriteText) -> None:
    path = write(
        """
        apiVersion: tickrail/v1
        kind: GuardrailPolicy
        rules:
          - name: budget
            scope: lifetime
            conditon: lifetime.count > 1
            condition: lifetime.count > 1
            action: ABORT_LIFETIME
        """
    )
    error = one_problem(path)
    assert (error.line, error.rule) == (6, "budget")
    assert "unknown field 'conditon'" in str(error) and "did you mean 'condition'" in str(error)


def test_unknown_top_level_field(write: WriteText) -> None:
    error = one_problem(write(HEADER.replace("rules:\n", "rulez: []\n")))
    assert error.line == 3 and "unknown field 'rulez'" in str(error)


def test_bad_expression_names_its_line_and_rule(write: WriteText) -> None:
    path = write(
        """
        # Budget policies for the research team.
        #
        # Keep these in sync with the finance sheet.
        # Owner: platform team.
        apiVersion: tickrail/v1
        kind: GuardrailPolicy
        description: budgets
        rules:
          - name: budget
            description: stop expensive lifetimes
            scope: lifetime
            condition: lifetime.sum.tokens_used > > 10000
            action: ABORT_LIFETIME
        """
    )
    error = one_problem(path)
    assert "line 12" in str(error) and "budget" in str(error)
    assert (error.file, error.line, error.rule) == (str(path), 12, "budget")
    assert "invalid expression" in str(error)


def test_bad_expression_in_a_literal_block_points_at_its_own_line(write: WriteText) -> None:
    path = write(
        HEADER
        + "  - name: multi\n"
        + "    scope: lifetime\n"
        + "    action: ABORT_LIFETIME\n"
        + "    condition: |\n"
        + "      lifetime.count > 1 &&\n"
        + "      lifetime.sum.tokens_used > > 3\n"
    )
    assert one_problem(path).line == 9


def test_non_boolean_expression_is_refused(write: WriteText) -> None:
    error = one_problem(
        write(
            HEADER + "  - name: sum\n    scope: lifetime\n    condition: lifetime.sum.tokens_used\n"
            "    action: ABORT_LIFETIME\n"
        )
    )
    assert (error.line, error.rule) == (6, "sum")
    assert "must be a boolean expression, got int" in str(error)


def test_unknown_action_is_refused(write: WriteText) -> None:
    error = one_problem(
        write(
            HEADER + "  - name: a\n    scope: lifetime\n    condition: lifetime.count > 1\n"
            "    action: NUKE_EVERYTHING\n"
        )
    )
    assert (error.line, error.rule) == (7, "a") and "unknown action 'NUKE_EVERYTHING'" in str(error)


def test_unknown_scope_is_refused(write: WriteText) -> None:
    error = one_problem(
        write(
            HEADER + "  - name: a\n    scope: galaxy\n    condition: lifetime.count > 1\n"
            "    action: ABORT_LIFETIME\n"
        )
    )
    assert (error.line, error.rule) == (5, "a") and "unknown scope 'galaxy'" in str(error)


def test_missing_required_field_is_refused(write: WriteText) -> None:
    error = one_problem(
        write(HEADER + "  - name: a\n    scope: lifetime\n    action: ABORT_LIFETIME\n")
    )
    assert (error.line, error.rule) == (4, "a") and "missing required field 'condition'" in str(
        error
    )


def test_wrong_api_version_and_kind(write: WriteText) -> None:
    problems = check_files([write("apiVersion: v0\nkind: Policy\n")])
    assert any("line 1" in p and "apiVersion must be 'tickrail/v1'" in p for p in problems)
    assert any("line 2" in p and "kind must be 'GuardrailPolicy'" in p for p in problems)


def test_empty_file_is_refused(write: WriteText) -> None:
    assert "empty file" in str(one_problem(write("# nothing\n")))


def test_duplicate_rule_names_name_both_places(rules_file: WriteRules) -> None:
    first = rules_file(rule("dup", "lifetime.count > 1"), name="a.yaml")
    second = rules_file(
        rule("ok", "lifetime.count > 1"), rule("dup", "lifetime.count > 2"), name="b.yaml"
    )
    with pytest.raises(PolicyError) as caught:
        PolicySet.load([first, second])
    error = caught.value
    assert (error.file, error.line, error.rule) == (str(second), 8, "dup")
    assert f"first defined in {first} line 4" in str(error)


def test_condition_must_fit_its_scope(rules_file: WriteRules) -> None:
    error = one_problem(rules_file(rule("r", "tenant.day.count > 1", scope="lifetime")))
    assert "scope 'lifetime' cannot read tenant" in str(error)


def test_every_problem_is_reported_at_once(write: WriteText) -> None:
    path = write(
        HEADER
        + "  - name: a\n    scope: lifetime\n    condition: lifetime.count >\n"
        + "    action: ABORT_LIFETIME\n"
        + "  - name: b\n    scope: lifetime\n    condition: lifetime.count > 1\n"
        + "    action: BOOM\n"
        + "  - name: c\n    scope: lifetime\n    condition: lifetime.count > 1\n"
        + "    action: ABORT_LIFETIME\n"
        + "    colour: red\n"
    )
    problems = check_files([path])
    assert [re.search(r"line (\d+), rule '(\w)'", p).groups() for p in problems] == [  # type: ignore[union-attr]
        ("6", "a"),
        ("11", "b"),
        ("16", "c"),
    ]
    with pytest.raises(PolicyError, match="3 problems in policy files") as caught:
        PolicySet.load([path])
    assert all(p in str(caught.value) for p in problems)


# ---- the shipped files ----------------------------------------------------------------------


def test_shipped_policies_load_together() -> None:
    assert check_files(SHIPPED) == []
    policies = PolicySet.load(SHIPPED)
    assert "lifetime-token-budget" in {r.name for r in policies.rules}
    acme = {r.name: r for r in policies.rules_for("acme", "research", "retrieve")}
    assert "lifetime-step-ceiling" not in acme
    assert acme["lifetime-cost-ceiling"].tenant == "acme"


def test_policies_directory_loads_the_defaults_only() -> None:
    policies = PolicySet.load([REPO / "policies"])
    assert policies.files == (str(REPO / "policies" / "default.yaml"),)


def test_shipped_policies_match_the_json_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((REPO / "policies" / "schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in SHIPPED:
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
        assert errors == [], path


def test_a_file_named_twice_loads_once(tmp_path: Path, rules_file: WriteRules) -> None:
    path = rules_file(rule("a", "lifetime.count > 1"))
    assert PolicySet.load([path, tmp_path]).files == (str(path),)
