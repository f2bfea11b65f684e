from tests.conftest import TOKEN


def test_connect_and_health(gateway, client_factory):
    client = client_factory()
    assert client.challenge["event"] == "connect.challenge"
    assert client.hello["type"] == "hello-ok"
    res = client.request("health")
    assert res["ok"] and res["payload"]["ok"] is True
    assert TOKEN not in gateway.stderr()
