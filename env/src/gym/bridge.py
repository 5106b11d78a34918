"""The Python half of rl-env's Gymnasium bridge.

Both designs run this one module. The in-process design imports it into the embedded interpreter
and calls `Bridge` methods through pyo3; the process design runs it as `python -c <this> serve`,
which answers requests on stdin/stdout with the binary protocol below.

Values cross as bytes: observations as float32 (little-endian, row-major), actions as int64 for
Discrete and MultiDiscrete and float32 for Box, info as JSON text (empty when the dict is empty).

Protocol (process design), every integer little-endian:
  request:  op u8, length u32, payload
    b"M"  make: JSON {"id": str, "kwargs": object}; reply: the spaces as JSON (see `describe`)
    b"R"  reset: has_seed u8, seed u64, then the options as JSON (empty: None); reply: obs, info
    b"S"  step: the action bytes; reply: obs, reward f64, flags u8 (1 terminated, 2 truncated), info
    b"L"  list ids: reply: JSON list of every id in Gymnasium's registry
  reply:    status u8 (0 ok, 1 error), length u32, payload (an error's payload: "Type: message")
End of input closes the env and exits.
"""

import json
import math
import os
import struct
import sys

INSTALL_HINT = (
    "install the bridge's Python packages with `pip install -r requirements-gym.txt` "
    "(gymnasium[mujoco]==1.4.0), or point RL_PYTHON (a python executable) or VIRTUAL_ENV "
    "at an environment that has them"
)
BRIDGE_PACKAGES = ("gymnasium", "numpy", "mujoco")

_np = None
_gym = None


def _modules():
    """NumPy and Gymnasium, imported on first use so that a missing one is a clear error."""
    global _np, _gym
    if _gym is None:
        # Gymnasium first: a bare environment then names the package to install.
        import gymnasium
        import numpy

        _np, _gym = numpy, gymnasium
    return _np, _gym


def format_exception(exc):
    """`ExceptionType: message`, saying what to install when a bridge package is missing."""
    name = type(exc).__name__
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        if top in BRIDGE_PACKAGES:
            version = "%d.%d" % sys.version_info[:2]
            where = sys.executable or "the embedded interpreter"
            return "%s: the Python package '%s' is not installed for %s (Python %s); %s" % (
                name, top, where, version, INSTALL_HINT)
    if name == "DependencyNotInstalled":
        return "%s: %s; %s" % (name, exc, INSTALL_HINT)
    return "%s: %s" % (name, exc)


def add_site_dirs(paths):
    """Adds each directory not yet on sys.path as a site directory (its .pth files included)."""
    import site

    for path in paths:
        if path and path not in sys.path and os.path.isdir(path):
            site.addsitedir(path)


def list_ids():
    """Every id in Gymnasium's registry, sorted."""
    _, gym = _modules()
    return sorted(gym.registry.keys())


def _describe_space(space):
    np, gym = _modules()
    spaces = gym.spaces
    if isinstance(space, spaces.Discrete):
        return {"kind": "discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        low = np.asarray(space.low).astype("<f4").ravel()
        high = np.asarray(space.high).astype("<f4").ravel()
        return {"kind": "box", "shape": [int(d) for d in space.shape],
                "low": low.tobytes().hex(), "high": high.tobytes().hex()}
    if isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim == 1 and not np.any(space.start):
        return {"kind": "multi_discrete", "nvec": [int(n) for n in space.nvec]}
    return {"kind": "unsupported", "repr": repr(space)}


def _jsonable(value):
    """A JSON-ready copy of an info value, or _SKIP for what JSON cannot hold."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _SKIP
    np = _np
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            return _SKIP
        return _jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        items = [_jsonable(v) for v in value]
        return [v for v in items if v is not _SKIP]
    if isinstance(value, dict):
        return _json_dict(value)
    return _SKIP


_SKIP = object()


def _json_dict(info):
    out = {}
    for key, value in info.items():
        value = _jsonable(value)
        if value is not _SKIP:
            out[str(key)] = value
    return out


def _json_default(value):
    np = _np
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return value.tolist()
    raise TypeError("not JSON")


def encode_info(info):
    """The info dict as JSON bytes; empty for an empty dict (the common case costs nothing).

    The C encoder takes plain and NumPy numbers directly; only an info holding something JSON
    cannot carry (NaN, an object) takes the slower path that skips those values.
    """
    if not info:
        return b""
    try:
        return json.dumps(info, separators=(",", ":"), allow_nan=False, default=_json_default).encode()
    except (TypeError, ValueError):
        return json.dumps(_json_dict(info), separators=(",", ":")).encode()


class Bridge:
    """One Gymnasium env made by `gymnasium.make`, stepped with byte-encoded actions."""

    def __init__(self, env_id, kwargs_json):
        np, gym = _modules()
        kwargs = json.loads(kwargs_json) if kwargs_json else {}
        self.env = gym.make(env_id, **kwargs)
        self.observation_space = _describe_space(self.env.observation_space)
        self.action_space = _describe_space(self.env.action_space)
        self._obs_bytes = 4 * _flat_dim(self.observation_space)
        self._action = _action_decoder(np, self.env.action_space, self.action_space)

    def describe(self):
        """The two spaces as JSON text."""
        return json.dumps({"observation_space": self.observation_space, "action_space": self.action_space})

    def _encode_obs(self, obs):
        data = _np.asarray(obs, dtype="<f4").tobytes()
        if len(data) != self._obs_bytes:
            raise ValueError("the env returned an observation of %d values, its observation space holds %d"
                             % (len(data) // 4, self._obs_bytes // 4))
        return data

    def reset(self, seed, options_json):
        """`env.reset(seed=seed, options=options)` as (obs bytes, info bytes)."""
        options = json.loads(options_json) if options_json else None
        obs, info = self.env.reset(seed=seed, options=options)
        return self._encode_obs(obs), encode_info(info)

    def step(self, action):
        """`env.step(action)` as (obs bytes, reward, terminated, truncated, info bytes)."""
        obs, reward, terminated, truncated, info = self.env.step(self._action(action))
        return self._encode_obs(obs), float(reward), bool(terminated), bool(truncated), encode_info(info)

    def close(self):
        self.env.close()


def _flat_dim(desc):
    kind = desc["kind"]
    if kind == "discrete":
        return 1
    if kind == "box":
        return len(desc["low"]) // 8
    if kind == "multi_discrete":
        return len(desc["nvec"])
    return 0


def _action_decoder(np, space, desc):
    kind = desc["kind"]
    if kind == "discrete":
        return lambda data: int.from_bytes(data, "little", signed=True)
    if kind == "box":
        dtype, shape = space.dtype, space.shape
        return lambda data: np.frombuffer(data, dtype="<f4").astype(dtype).reshape(shape)
    if kind == "multi_discrete":
        return lambda data: np.frombuffer(data, dtype="<i8").astype(np.int64)
    return None


def serve():
    """The process design's loop: requests on stdin, replies on stdout, until end of input."""
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    # Whatever the env prints goes to stderr, never into the protocol.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    header = struct.Struct("<BI")
    bridge = None

    def reply(status, payload):
        proto_out.write(header.pack(status, len(payload)))
        proto_out.write(payload)
        proto_out.flush()

    while True:
        head = proto_in.read(header.size)
        if len(head) < header.size:
            break
        op, length = header.unpack(head)
        payload = proto_in.read(length) if length else b""
        try:
            if op == 0x53:  # S
                obs, reward, terminated, truncated, info = bridge.step(payload)
                flags = (1 if terminated else 0) | (2 if truncated else 0)
                reply(0, b"".join((obs, struct.pack("<dB", reward, flags), info)))
            elif op == 0x52:  # R
                has_seed, seed = struct.unpack_from("<BQ", payload)
                obs, info = bridge.reset(seed if has_seed else None, payload[9:])
                reply(0, obs + info)
            elif op == 0x4D:  # M
                setup = json.loads(payload)
                bridge = Bridge(setup["id"], json.dumps(setup["kwargs"]))
                reply(0, bridge.describe().encode())
            elif op == 0x4C:  # L
                reply(0, json.dumps(list_ids()).encode())
            else:
                reply(1, ("ProtocolError: unknown request %r" % op).encode())
        except Exception as exc:
            reply(1, format_exception(exc).encode())
    if bridge is not None:
        bridge.close()


if __name__ == "__main__" and sys.argv[1:] == ["serve"]:
    serve()
