"""Tests for StaffbaseClient against the emulator: users, groups, paging, faults and metrics.

The retry rules and rate limiter on their own are tested in ``test_retry.py`` and
``test_ratelimit.py``; authentication in ``test_auth.py``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from staffsync import metrics
from staffsync.staffbase.client import StaffbaseClient
from staffsync.staffbase.errors import (
    ConflictError,
    FatalStaffbaseError,
    OutcomeUnknown,
    RecordFailed,
    RetriesExhausted,
    UserNotFound,
)
from staffsync.staffbase.model import build_user_body

from .helpers import metric, refused_url

if TYPE_CHECKING:
    from collections.abc import Iterator

    from staffsync.emulator import EmulatorServer

    from .helpers import EmulatorControl, SettingsFactory


def new_user(number: int, **fields: str) -> dict[str, Any]:
    flat = {
        "firstName": f"First{number}",
        "lastName": f"Last{number:03d}",
        "email": f"person{number}@example.com",
        **fields,
    }
    return build_user_body(flat, external_id=f"E{number:04d}", send_mail=False)


@pytest.fixture
def client(make_settings: SettingsFactory) -> Iterator[StaffbaseClient]:
    with StaffbaseClient(make_settings()) as staffbase:
        yield staffbase


class TestUsers:
    def test_create_and_get(self, client: StaffbaseClient) -> None:
        """A created user is pending and can be read by id and by externalID."""
        created = client.create_user(new_user(1, position="Engineer"))

        by_id = client.get_user(created["id"])
        by_external = client.find_user_by_external_id("E0001")

        assert created["status"] == "pending"
        assert created["externalID"] == "E0001"
        assert by_id == created
        assert by_external == created

    def test_get_missing(self, client: StaffbaseClient) -> None:
        """A user that does not exist is None."""
        assert client.get_user("nobody") is None
        assert client.find_user_by_external_id("E9999") is None

    def test_find_by_staffbase_id_is_not_external(self, client: StaffbaseClient) -> None:
        """A Staffbase id passed as externalID finds nothing, though the path matches it."""
        created = client.create_user(new_user(1))

        assert client.find_user_by_external_id(created["id"]) is None

    def test_update(self, client: StaffbaseClient, control: EmulatorControl) -> None:
        """A partial update changes the given fields and keeps the rest."""
        created = client.create_user(new_user(1, position="Engineer", department="R&D"))

        client.update_user(created["id"], build_user_body({"position": "Lead"}))

        stored = client.get_user(created["id"])
        assert stored is not None
        assert stored["position"] == "Lead"
        assert stored["department"] == "R&D"

    def test_update_missing(self, client: StaffbaseClient) -> None:
        """Updating a user that does not exist raises UserNotFound."""
        with pytest.raises(UserNotFound) as caught:
            client.update_user("5f0c0ffee0000000000000aa", {"position": "x"})

        assert caught.value.route == "/users/{id}"
        assert caught.value.status == 404

    def test_delete(self, client: StaffbaseClient) -> None:
        """A deleted user is gone, and deleting it again is fine."""
        created = client.create_user(new_user(1))

        client.delete_user(created["id"])
        client.delete_user(created["id"])

        assert client.get_user(created["id"]) is None

    def test_external_id_encoded(self, client: StaffbaseClient) -> None:
        """An externalID with spaces, '?', '#' and accents is found through the encoded path."""
        body = new_user(1)
        body["externalID"] = "HR 1?x#ö"
        client.create_user(body)

        found = client.find_user_by_external_id("HR 1?x#ö")

        assert found is not None
        assert found["externalID"] == "HR 1?x#ö"

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"externalID": "E0001"}, "externalID"),
            ({"emails": [{"value": "PERSON1@example.com", "primary": True}]}, "email"),
            ({"userName": "taken"}, "userName"),
        ],
    )
    def test_create_conflict(
        self, client: StaffbaseClient, change: dict[str, Any], field: str
    ) -> None:
        """A create that clashes on a unique value raises ConflictError naming the field."""
        client.create_user(new_user(1, userName="taken"))
        body = {**new_user(2), **change}

        with pytest.raises(ConflictError) as caught:
            client.create_user(body)

        assert caught.value.field == field
        assert caught.value.status == 409
        assert caught.value.ref is not None

    def test_invalid_body(self, client: StaffbaseClient) -> None:
        """A body that Staffbase rejects fails the record with the envelope's message."""
        with pytest.raises(RecordFailed) as caught:
            client.create_user({"externalID": "E1", "firstName": 42})

        assert caught.value.status == 400
        assert caught.value.ref == "ERROR_INVALID_REQUEST"
        assert not isinstance(caught.value, ConflictError)


class TestPaging:
    def test_every_user_once(self, client: StaffbaseClient, control: EmulatorControl) -> None:
        """Paging by 7 over activated, pending and deactivated users yields each user once."""
        created = [client.create_user(new_user(number)) for number in range(23)]
        signed_in = [user["id"] for user in created[:15]]
        control.sign_in(signed_in)
        for user in created[:6]:
            client.update_user(user["id"], {"status": "deactivated"})

        listed = list(client.iter_users(page_size=7))

        ids = [user["id"] for user in listed]
        assert sorted(ids) == sorted(user["id"] for user in created)
        assert len(ids) == 23
        statuses = sorted(user["status"] for user in listed)
        assert statuses.count("deactivated") == 6
        assert statuses.count("activated") == 9
        assert statuses.count("pending") == 8
        assert control.stats()["requests"]["GET /api/users"] == 4

    def test_status_filter(self, client: StaffbaseClient, control: EmulatorControl) -> None:
        """Only the requested statuses are listed."""
        created = [client.create_user(new_user(number)) for number in range(3)]
        control.sign_in([created[0]["id"]])

        listed = list(client.iter_users(statuses=("activated",)))

        assert [user["id"] for user in listed] == [created[0]["id"]]

    def test_exact_multiple(self, client: StaffbaseClient, control: EmulatorControl) -> None:
        """When the users fill whole pages, no extra request is made."""
        for number in range(10):
            client.create_user(new_user(number))

        assert len(list(client.iter_users(page_size=5))) == 10
        assert control.stats()["requests"]["GET /api/users"] == 2

    def test_empty_tenant(self, client: StaffbaseClient) -> None:
        """An empty tenant lists nothing."""
        assert list(client.iter_users()) == []


class TestGroups:
    def test_members(self, client: StaffbaseClient, control: EmulatorControl) -> None:
        """Members are added and removed with the group-members media types."""
        users = [client.create_user(new_user(number))["id"] for number in range(3)]
        group = client.create_group("Berlin", "location:berlin")

        client.add_group_members(group["id"], users)
        client.remove_group_members(group["id"], users[:1])
        client.add_group_members(group["id"], [])

        [stored] = control.groups()
        assert stored["name"] == "Berlin"
        assert stored["externalId"] == "location:berlin"
        assert stored["members"] == users[1:]

    def test_iter_groups(self, client: StaffbaseClient) -> None:
        """Every group is listed across pages."""
        for number in range(5):
            client.create_group(f"Group {number}", f"g{number}")

        names = [group["name"] for group in client.iter_groups(page_size=2)]

        assert names == [f"Group {number}" for number in range(5)]


class TestRequests:
    def test_headers(self, make_settings: SettingsFactory) -> None:
        """Requests carry the configured User-Agent and ask for JSON."""
        seen: list[httpx.Request] = []
        settings = make_settings(user_agent="staffsync-test/1.0")

        with (
            httpx.Client(event_hooks={"request": [seen.append]}) as http,
            StaffbaseClient(settings, http=http) as client,
        ):
            client.check()

        api_request = seen[-1]
        assert api_request.url.path == "/api/users"
        assert api_request.headers["User-Agent"] == "staffsync-test/1.0"
        assert api_request.headers["Accept"] == "application/json"

    def test_counted_by_route_template(self, client: StaffbaseClient) -> None:
        """Requests are counted by route template, never by concrete id."""
        created = client.create_user(new_user(1))
        before = metric(
            "staffsync_staffbase_requests_total", method="GET", route="/users/{id}", status="200"
        )

        client.get_user(created["id"])

        after = metric(
            "staffsync_staffbase_requests_total", method="GET", route="/users/{id}", status="200"
        )
        assert after - before == 1.0
        routes = {
            sample.labels["route"]
            for family in metrics.REGISTRY.collect()
            for sample in family.samples
            if "route" in sample.labels
        }
        assert created["id"] not in str(routes)

    def test_concurrent_creates(
        self, make_settings: SettingsFactory, control: EmulatorControl
    ) -> None:
        """Eight threads creating 40 users share one token and create each user once."""
        with (
            StaffbaseClient(make_settings(max_concurrency=8)) as client,
            ThreadPoolExecutor(8) as pool,
        ):
            list(pool.map(lambda number: client.create_user(new_user(number)), range(40)))

        assert len(control.users()) == 40
        assert control.stats()["token_requests"] == 1

    def test_wrong_base_url(self, make_settings: SettingsFactory, emulator: EmulatorServer) -> None:
        """A base URL that is not the API fails the run with a hint."""
        settings = make_settings(base_url=emulator.url + "/wrong")

        with (
            StaffbaseClient(settings) as client,
            pytest.raises(FatalStaffbaseError, match="check base_url"),
        ):
            client.check()


class TestRateLimited:
    def test_with_retry_after(
        self, make_settings: SettingsFactory, control: EmulatorControl
    ) -> None:
        """429s with Retry-After are waited out and every call succeeds."""
        control.faults(rate_limit_per_second=5, rate_limit_retry_after=True)
        limited_before = metric("staffsync_staffbase_rate_limited_total")
        retries_before = metric("staffsync_staffbase_retries_total", reason="rate_limited")

        with StaffbaseClient(make_settings()) as client:
            for _ in range(8):
                client.check()

        rejected = control.stats()["rate_limited"]
        assert rejected >= 1
        assert metric("staffsync_staffbase_rate_limited_total") - limited_before == rejected
        assert (
            metric("staffsync_staffbase_retries_total", reason="rate_limited") - retries_before
            == rejected
        )

    def test_without_retry_after(
        self, make_settings: SettingsFactory, control: EmulatorControl
    ) -> None:
        """429s without Retry-After are retried after a backoff and every call succeeds."""
        control.faults(rate_limit_per_second=5, rate_limit_retry_after=False)
        limited_before = metric("staffsync_staffbase_rate_limited_total")
        settings = make_settings(
            retry_initial_wait_seconds=0.05, max_retry_wait_seconds=1.0, max_attempts=10
        )

        with StaffbaseClient(settings) as client:
            for _ in range(8):
                client.check()

        rejected = control.stats()["rate_limited"]
        assert rejected >= 1
        assert metric("staffsync_staffbase_rate_limited_total") - limited_before == rejected
        assert client.rate_limiter.rate < 1000.0

    def test_retry_after_too_long(
        self, make_settings: SettingsFactory, control: EmulatorControl
    ) -> None:
        """A Retry-After beyond max_retry_wait_seconds fails the request without sleeping."""
        control.faults(rate_limit_per_second=0.01, rate_limit_retry_after=True)
        sleeps: list[float] = []

        with StaffbaseClient(make_settings(), sleep=sleeps.append) as client:
            client.check()
            with pytest.raises(RetriesExhausted, match="longer than max_retry_wait_seconds"):
                client.check()

        # Only the pacing's millisecond waits, never the server's Retry-After.
        assert max(sleeps, default=0.0) < 1.0


class TestServerErrors:
    def test_retried_until_success(
        self, make_settings: SettingsFactory, control: EmulatorControl
    ) -> None:
        """With 30 % of requests failing, reads are retried until they succeed."""
        control.faults(error_rate=0.3)
        retries_before = metric("staffsync_staffbase_retries_total", reason="server_error")
        retries_before += metric("staffsync_staffbase_retries_total", reason="unavailable")

        with StaffbaseClient(make_settings(max_attempts=10)) as client:
            for _ in range(20):
                client.check()

        injected = control.stats()["errors_injected"]
        retries = metric("staffsync_staffbase_retries_total", reason="server_error")
        retries += metric("staffsync_staffbase_retries_total", reason="unavailable")
        assert injected >= 1
        assert retries - retries_before == injected

    def test_attempts_exhausted(
        self, make_settings: SettingsFactory, control: EmulatorControl
    ) -> None:
        """When every attempt fails, the read fails the record after max_attempts."""
        control.faults(error_rate=1.0)

        with (
            StaffbaseClient(make_settings(max_attempts=3)) as client,
            pytest.raises(RetriesExhausted, match="after 3 attempts"),
        ):
            client.get_user("E0001")

        assert control.stats()["requests"]["GET /api/users/{id}"] == 3

    def test_create_never_duplicated(
        self, make_settings: SettingsFactory, control: EmulatorControl
    ) -> None:
        """With dropped connections, creates either succeed or report an unknown outcome.

        A create is never sent again blindly: had it been, the emulator would reject
        the second copy with a duplicate-externalID conflict.
        """
        control.faults(drop_rate=0.4)
        unknown = 0

        with StaffbaseClient(make_settings(max_attempts=10)) as client:
            for number in range(20):
                while True:
                    try:
                        client.create_user(new_user(number))
                        break
                    except OutcomeUnknown:
                        unknown += 1
                        if client.find_user_by_external_id(f"E{number:04d}") is not None:
                            break

        external_ids = sorted(user["externalID"] for user in control.users())
        assert external_ids == [f"E{number:04d}" for number in range(20)]
        assert unknown >= 1

    def test_update_retried_on_drop(
        self, make_settings: SettingsFactory, control: EmulatorControl
    ) -> None:
        """Updates whose connection drops are sent again and all take effect."""
        with StaffbaseClient(make_settings(max_attempts=10)) as client:
            ids = [client.create_user(new_user(number))["id"] for number in range(10)]
            control.faults(drop_rate=0.4)
            for user_id in ids:
                client.update_user(user_id, {"position": "Lead"})
            control.faults(drop_rate=0.0)

            positions = [client.get_user(user_id)["position"] for user_id in ids]  # type: ignore[index]

        dropped = control.stats()["dropped"]
        assert positions == ["Lead"] * 10
        assert dropped["before"] + dropped["after"] >= 1


class TestTransportFailures:
    def test_create_timeout_outcome_unknown(
        self, make_settings: SettingsFactory, control: EmulatorControl
    ) -> None:
        """A create whose response times out raises OutcomeUnknown and is not sent again."""
        settings = make_settings(auth="token", api_token="demo-api-token", timeout_seconds=0.2)
        control.faults(latency_ms=400)

        with (
            StaffbaseClient(settings) as client,
            pytest.raises(OutcomeUnknown, match="timeout: ReadTimeout") as caught,
        ):
            client.create_user(new_user(1))

        assert caught.value.route == "/users"
        assert control.stats()["requests"]["POST /api/users"] == 1

    def test_read_timeout_retried(
        self, make_settings: SettingsFactory, control: EmulatorControl
    ) -> None:
        """A read that times out on every attempt fails the record after max_attempts."""
        settings = make_settings(
            auth="token", api_token="demo-api-token", timeout_seconds=0.1, max_attempts=2
        )
        control.faults(latency_ms=300)

        with (
            StaffbaseClient(settings) as client,
            pytest.raises(RetriesExhausted, match="after 2 attempts"),
        ):
            client.get_user("E0001")

        assert control.stats()["requests"]["GET /api/users/{id}"] == 2

    def test_create_connection_refused(self, make_settings: SettingsFactory) -> None:
        """A create to a server that refuses connections is retried, then fails the record."""
        settings = make_settings(
            auth="token",
            api_token="demo-api-token",
            base_url=refused_url().removesuffix("/oauth2/token") + "/api",
            max_attempts=3,
        )
        labels = {"method": "POST", "route": "/users", "status": "error"}
        before = metric("staffsync_staffbase_requests_total", **labels)

        with (
            StaffbaseClient(settings, sleep=lambda _: None) as client,
            pytest.raises(RetriesExhausted, match="after 3 attempts"),
        ):
            client.create_user(new_user(1))

        assert metric("staffsync_staffbase_requests_total", **labels) - before == 3.0
