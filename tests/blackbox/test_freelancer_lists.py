"""Freelancer list sub-resources per docs/api.md: server ids, own list only (404), sets for skills/languages."""

from __future__ import annotations

import httpx
import pytest

from ._harness import API, Account, expect, has_fields, problem, register_freelancer

F = f"{API}/users/freelancer"

# list -> (id query parameter, a full item, a change, a field with a bad date or None)
LISTS = {
    "achievements": ("achievementId",
                     {"achievementName": "Award", "awardedBy": "ACM", "achievementDescription": "best",
                      "awardDate": "2020-05-01"},
                     {"awardedBy": "IEEE"}, "awardDate"),
    "education": ("educationId",
                  {"schoolName": "MIT", "degree": "BSc", "major": "CS", "city": "Boston", "grade": "A",
                   "educationDescription": "fun", "educationStartDate": "2010-09-01", "endDate": "2014-06-30"},
                  {"grade": "A+"}, "educationStartDate"),
    "experience": ("experienceId",
                   {"companyName": "Initech", "jobTitle": "Dev", "city": "Austin", "experienceDescription": "TPS",
                    "employmentStart": "2015-01-01", "employmentEnd": "2018-12-31"},
                   {"city": "Dallas"}, "employmentStart"),
}


def test_fresh_freelancer_has_empty_lists(http: httpx.Client) -> None:
    f = register_freelancer(http)
    for name in (*LISTS, "skills", "languages"):
        assert expect(http.get(f"{F}/{name}", headers=f.auth), 200) == [], name


@pytest.mark.parametrize("name", LISTS)
def test_item_list_lifecycle(http: httpx.Client, name: str) -> None:
    id_param, item, change, _ = LISTS[name]
    f = register_freelancer(http)
    added = has_fields(expect(http.post(f"{F}/{name}", json=item, headers=f.auth), 201), {"id", *item})
    assert {k: added[k] for k in item} == item
    first_field = next(iter(item))
    minimal = expect(http.post(f"{F}/{name}", json={first_field: "only"}, headers=f.auth), 201)
    assert minimal["id"] != added["id"]
    listed = expect(http.get(f"{F}/{name}", headers=f.auth), 200)
    assert isinstance(listed, list) and {i["id"] for i in listed} == {added["id"], minimal["id"]}
    updated = expect(http.put(f"{F}/{name}", json={"id": added["id"], **change}, headers=f.auth), 200)
    assert updated == {**added, **change}, updated
    r = http.delete(f"{F}/{name}", params={id_param: added["id"]}, headers=f.auth)
    assert r.status_code == 204, (r.status_code, r.text)
    assert [i["id"] for i in expect(http.get(f"{F}/{name}", headers=f.auth), 200)] == [minimal["id"]]
    problem(http.delete(f"{F}/{name}", params={id_param: added["id"]}, headers=f.auth), 404)
    problem(http.put(f"{F}/{name}", json={"id": added["id"], **change}, headers=f.auth), 404)
    problem(http.delete(f"{F}/{name}", headers=f.auth), 400)                      # no id parameter
    problem(http.put(f"{F}/{name}", json=change, headers=f.auth), 400, fields=("id",))


@pytest.mark.parametrize("name", LISTS)
def test_item_not_in_own_list_404(http: httpx.Client, freelancer: Account, name: str) -> None:
    id_param, item, change, _ = LISTS[name]
    owner = register_freelancer(http)
    theirs = expect(http.post(f"{F}/{name}", json=item, headers=owner.auth), 201)
    problem(http.put(f"{F}/{name}", json={"id": theirs["id"], **change}, headers=freelancer.auth), 404)
    problem(http.delete(f"{F}/{name}", params={id_param: theirs["id"]}, headers=freelancer.auth), 404)
    assert len(expect(http.get(f"{F}/{name}", headers=owner.auth), 200)) == 1


@pytest.mark.parametrize("name", LISTS)
def test_item_validation_400(http: httpx.Client, freelancer: Account, name: str) -> None:
    _, item, _, date_field = LISTS[name]
    first_field = next(iter(item))
    rest = {k: v for k, v in item.items() if k != first_field}
    problem(http.post(f"{F}/{name}", json=rest, headers=freelancer.auth), 400, fields=(first_field,))
    problem(http.post(f"{F}/{name}", json={**item, date_field: "2020/05/01"}, headers=freelancer.auth), 400,
            fields=(date_field,))
    problem(http.post(f"{F}/{name}", json={**item, first_field: 12}, headers=freelancer.auth), 400,
            fields=(first_field,))
    assert expect(http.get(f"{F}/{name}", headers=freelancer.auth), 200) == []


@pytest.mark.parametrize("name,add_field,remove_param", [
    ("skills", "newSkill", "skillToRemove"), ("languages", "newLanguage", "languageToRemove")])
def test_string_sets(http: httpx.Client, name: str, add_field: str, remove_param: str) -> None:
    f = register_freelancer(http)
    assert expect(http.post(f"{F}/{name}", json={add_field: "Python"}, headers=f.auth), 201) == "Python"
    r = http.post(f"{F}/{name}", json={add_field: "Python"}, headers=f.auth)
    assert r.status_code in (200, 201), (r.status_code, r.text)
    expect(http.post(f"{F}/{name}", json={add_field: "Go"}, headers=f.auth), 201)
    assert sorted(expect(http.get(f"{F}/{name}", headers=f.auth), 200)) == ["Go", "Python"]
    assert sorted(expect(http.get(f"{F}/profile", headers=f.auth), 200)[name]) == ["Go", "Python"]
    r = http.delete(f"{F}/{name}", params={remove_param: "Python"}, headers=f.auth)
    assert r.status_code == 204, (r.status_code, r.text)
    assert expect(http.get(f"{F}/{name}", headers=f.auth), 200) == ["Go"]
    problem(http.delete(f"{F}/{name}", params={remove_param: "Python"}, headers=f.auth), 404)   # not in the list
    problem(http.delete(f"{F}/{name}", headers=f.auth), 400)
    problem(http.post(f"{F}/{name}", json={}, headers=f.auth), 400, fields=(add_field,))
    problem(http.post(f"{F}/{name}", json={add_field: 5}, headers=f.auth), 400, fields=(add_field,))
