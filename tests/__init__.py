"""Test suite for pyramid_session_redis (helpers importable as ``tests.servers``)."""
