"""The suite's own rules: every test has a time limit, slow ones a longer one."""

from conftest import FAST_TEST_SECONDS, SLOW_TEST_SECONDS


def test_every_test_has_a_time_limit_by_its_marker(request):
    items = request.session.items
    assert items
    for item in items:
        marker = item.get_closest_marker("timeout")
        assert marker is not None, item.nodeid
        if item.get_closest_marker("slow") and marker.args[0] not in (SLOW_TEST_SECONDS,):
            assert marker.args[0] >= FAST_TEST_SECONDS, item.nodeid  # a slow test's own limit is never the short one
    assert request.node.get_closest_marker("timeout").args[0] == FAST_TEST_SECONDS
