"""Parking a run's checkpoint for another machine (sb3_ofexi.harness.park): what is unparked is
the checkpoint that was parked, array for array; complete buffer chunks are written once."""

import pickle
import shutil

import numpy as np
import pytest
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.env_util import make_vec_env

from sb3_ofexi.harness import park as park_module
from sb3_ofexi.harness.checkpoint import latest_checkpoint, write_checkpoint
from sb3_ofexi.harness.park import checkpoint_steps, main, park, park_if_newer, parked_steps, unpark, unpark_if_newer


def _model(buffer_size, **kwargs):
    env = make_vec_env("Pendulum-v1", n_envs=1, seed=0)
    return SAC(
        "MlpPolicy",
        env,
        buffer_size=buffer_size,
        learning_starts=50,
        batch_size=16,
        policy_kwargs={"net_arch": [8]},
        seed=0,
        device="cpu",
        **kwargs,
    )


def _checkpoint(model, run_dir, steps):
    model.learn(steps, reset_num_timesteps=False)
    return write_checkpoint(run_dir, model, {"train": model.get_env()}, {"wall_s": 1.0})


def _same_checkpoint(a, b):
    buffer_a = pickle.loads((a / "replay_buffer.pkl").read_bytes())
    buffer_b = pickle.loads((b / "replay_buffer.pkl").read_bytes())
    assert (buffer_a.pos, buffer_a.full, buffer_a.buffer_size) == (buffer_b.pos, buffer_b.full, buffer_b.buffer_size)
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        if not hasattr(buffer_a, name):  # next_observations with optimize_memory_usage
            assert not hasattr(buffer_b, name)
            continue
        np.testing.assert_array_equal(getattr(buffer_a, name), getattr(buffer_b, name))
        assert getattr(buffer_a, name).dtype == getattr(buffer_b, name).dtype
    for name in ("envs.pkl", "state.pkl"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    model_a, model_b = SAC.load(a / "model.zip", device="cpu"), SAC.load(b / "model.zip", device="cpu")
    for (key, p), (_, q) in zip(model_a.policy.state_dict().items(), model_b.policy.state_dict().items()):
        assert th.equal(p, q), key
    assert model_a.actor.optimizer.state_dict()["state"].keys() == model_b.actor.optimizer.state_dict()["state"].keys()


def test_parked_checkpoint_unparks_to_the_same_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(park_module, "CHUNK_ROWS", 120)
    model, run_dir, parked = _model(1000), tmp_path / "run", tmp_path / "parked"
    first = _checkpoint(model, run_dir, 300)
    meta = park(run_dir, parked)
    assert meta["rows"] == 300 and [c["rows"] for c in meta["chunks"]] == [120, 120, 60]
    assert parked_steps(parked) == 300
    (chunk0_path,) = parked.glob("buffer-0000-*.npz")
    chunk0 = chunk0_path.stat()

    again = tmp_path / "again"
    _same_checkpoint(first, unpark(parked, again))
    assert latest_checkpoint(again).name == "checkpoint-300"

    second = _checkpoint(model, run_dir, 200)  # 500 rows: chunks 0 and 1 complete and kept, 2 rewritten
    meta = park(run_dir, parked)
    assert [c["rows"] for c in meta["chunks"]] == [120, 120, 120, 120, 20]
    assert chunk0_path.stat().st_mtime_ns == chunk0.st_mtime_ns, "a complete chunk is written once"
    assert len(list(parked.glob("buffer-*.npz"))) == 5, "the earlier partial chunk is gone"
    _same_checkpoint(second, unpark(parked, again))
    assert sorted(p.name for p in again.glob("checkpoint-*")) == ["checkpoint-500"]


def test_a_full_buffer_parks_every_row(tmp_path, monkeypatch):
    monkeypatch.setattr(park_module, "CHUNK_ROWS", 64)
    model, run_dir, parked = _model(150), tmp_path / "run", tmp_path / "parked"
    checkpoint = _checkpoint(model, run_dir, 260)  # wrapped around: full, pos = 110
    assert pickle.loads((checkpoint / "replay_buffer.pkl").read_bytes()).full
    meta = park(run_dir, parked)
    assert meta["rows"] == 150 and sum(c["rows"] for c in meta["chunks"]) == 150
    _same_checkpoint(checkpoint, unpark(parked, tmp_path / "again"))
    checkpoint = _checkpoint(model, run_dir, 60)  # the oldest rows overwritten: every chunk changes
    park(run_dir, parked)
    _same_checkpoint(checkpoint, unpark(parked, tmp_path / "again"))


def test_a_parking_killed_midway_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(park_module, "CHUNK_ROWS", 120)
    model, run_dir, parked = _model(1000), tmp_path / "run", tmp_path / "parked"
    first = shutil.copytree(_checkpoint(model, run_dir, 300), tmp_path / "first")  # the run deletes its own
    park(run_dir, parked)
    _checkpoint(model, run_dir, 200)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(park_module, "_deflate_zip", killed)  # dies after the chunks, before the model
    with pytest.raises(KeyboardInterrupt):
        park(run_dir, parked)
    _same_checkpoint(first, unpark(parked, tmp_path / "again"))


def test_nothing_to_park_or_unpark_is_said(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoint to park"):
        park(tmp_path / "run", tmp_path / "parked")
    with pytest.raises(FileNotFoundError, match="no parked checkpoint"):
        unpark(tmp_path / "parked", tmp_path / "run")
    assert parked_steps(tmp_path / "parked") is None
    assert park_if_newer(tmp_path / "run", tmp_path / "parked") is None
    assert unpark_if_newer(tmp_path / "parked", tmp_path / "run") is None
    with pytest.raises(ValueError, match="carry='../progress.json'"):
        park(tmp_path / "run", tmp_path / "parked", carry=("../progress.json",))


def test_only_a_newer_checkpoint_moves_and_carries_the_run_files(tmp_path, capsys):
    model, run_dir, parked, other = _model(1000), tmp_path / "run", tmp_path / "parked", tmp_path / "other"
    _checkpoint(model, run_dir, 300)
    (run_dir / "study_commit").write_text("abc\n")
    (run_dir / "progress.json").write_text('{"timesteps": 300}')
    carry = ("study_commit", "progress.json", "absent.txt")
    assert park_if_newer(run_dir, parked, carry)["num_timesteps"] == 300
    assert (parked / "study_commit").read_text() == "abc\n"
    assert park_if_newer(run_dir, parked, carry) is None, "the same checkpoint is not parked twice"

    # another machine: nothing there, so it unparks; then it runs on and is newer than what is parked
    assert unpark_if_newer(parked, other, carry).name == "checkpoint-300"
    assert checkpoint_steps(other) == 300 and (other / "progress.json").read_text() == '{"timesteps": 300}'
    assert unpark_if_newer(parked, other, carry) is None
    _checkpoint(model, run_dir, 100)
    shutil.rmtree(other)
    shutil.copytree(run_dir, other)  # 400 steps here, 300 parked: the parked one must not win
    (other / "progress.json").write_text('{"timesteps": 400}')
    assert main(["unpark", "--if-newer", "--carry", "progress.json", str(parked), str(other)]) == 0
    assert "nothing unparked" in capsys.readouterr().out
    assert checkpoint_steps(other) == 400 and (other / "progress.json").read_text() == '{"timesteps": 400}'
    assert main(["park", "--if-newer", "--carry", "progress.json,study_commit", str(other), str(parked)]) == 0
    assert "parked checkpoint-400" in capsys.readouterr().out
    assert parked_steps(parked) == 400 and (parked / "progress.json").read_text() == '{"timesteps": 400}'
    assert (parked / "study_commit").read_text() == "abc\n"
    assert main(["steps", str(parked)]) == 0 and capsys.readouterr().out == "400\n"


def test_a_memory_optimised_buffer_keeps_the_row_after_the_last(tmp_path):
    # that buffer finds each next observation in the following row: the row at pos is data too
    model = _model(1000, optimize_memory_usage=True, replay_buffer_kwargs={"handle_timeout_termination": False})
    checkpoint = _checkpoint(model, tmp_path / "run", 300)
    meta = park(tmp_path / "run", tmp_path / "parked")
    assert meta["rows"] == 301
    _same_checkpoint(checkpoint, unpark(tmp_path / "parked", tmp_path / "again"))


def test_an_unpark_that_fails_still_leaves_the_run_its_files_and_no_pointer(tmp_path):
    model, run_dir, parked = _model(1000), tmp_path / "run", tmp_path / "parked"
    _checkpoint(model, run_dir, 300)
    (run_dir / "study_commit").write_text("abc\n")
    park(run_dir, parked, carry=("study_commit",))
    (chunk,) = parked.glob("buffer-*.npz")
    chunk.write_bytes(b"damaged")  # a bad chunk: the checkpoint cannot be rebuilt
    other = tmp_path / "other"
    with pytest.raises(ValueError, match="a damaged or missing buffer chunk"):
        unpark(parked, other, carry=("study_commit",))
    assert (other / "study_commit").read_text() == "abc\n", "a restart from step 0 keeps the run's pinned commit"
    assert checkpoint_steps(other) is None, "no pointer to a checkpoint that was not rebuilt"
    assert main(["unpark", str(tmp_path / "nothing"), str(other)]) == 1
    with pytest.raises(ValueError, match="model-STEPS.zip"):
        park(run_dir, parked, carry=("model-300.zip",))


def test_chunks_keep_only_the_next_observations_that_are_not_the_following_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(park_module, "CHUNK_ROWS", 250)
    model, run_dir, parked = _model(2000), tmp_path / "run", tmp_path / "parked"
    whole = park_module._chunk_arrays
    # a first parking as the first version wrote it (whole next observations), then today's
    monkeypatch.setattr(
        park_module, "_chunk_arrays", lambda arrays, start, stop: {k: v[start:stop] for k, v in arrays.items()}
    )
    _checkpoint(model, run_dir, 300)
    park(run_dir, parked)
    monkeypatch.setattr(park_module, "_chunk_arrays", whole)
    checkpoint = _checkpoint(model, run_dir, 500)  # 800 rows: chunk 0 kept as it was, 1-3 written anew
    park(run_dir, parked)
    files = {path.name[:11]: np.load(path).files for path in parked.glob("buffer-*.npz")}
    assert "next_observations" in files["buffer-0000"], "a chunk already parked is kept"
    for index in ("0001", "0002", "0003"):
        assert "next_observations" not in files[f"buffer-{index}"]
    with np.load(next(parked.glob("buffer-0001-*.npz"))) as chunk:
        # Pendulum's episodes end every 200 steps: those rows and the chunk's last are stored
        assert 1 <= len(chunk["next_observations@differs"]) <= 3 and chunk["next_observations@differs"][-1] == 249
    _same_checkpoint(checkpoint, unpark(parked, tmp_path / "again"))
    one_row = whole({"observations": np.ones((1, 1, 3)), "next_observations": np.zeros((1, 1, 3))}, 0, 1)
    assert one_row["next_observations@differs"].tolist() == [0]


def test_a_dict_buffer_parks_and_unparks_key_by_key(tmp_path, monkeypatch):
    from stable_baselines3.common.envs import BitFlippingEnv

    monkeypatch.setattr(park_module, "CHUNK_ROWS", 100)
    env = BitFlippingEnv(n_bits=4, continuous=True, max_steps=8)
    model = SAC("MultiInputPolicy", env, buffer_size=500, learning_starts=50, batch_size=16, seed=0, device="cpu")
    model.learn(260)
    run_dir = tmp_path / "run"
    checkpoint = write_checkpoint(run_dir, model, {"train": model.get_env()}, {"wall_s": 1.0})
    park(run_dir, tmp_path / "parked")
    with np.load(next((tmp_path / "parked").glob("buffer-0000-*.npz"))) as chunk:
        assert {"next_observations/observation@differs", "next_observations/desired_goal@rows"} <= set(chunk.files)
    again = unpark(tmp_path / "parked", tmp_path / "again")
    before = pickle.loads((checkpoint / "replay_buffer.pkl").read_bytes())
    after = pickle.loads((again / "replay_buffer.pkl").read_bytes())
    for name in ("observations", "next_observations"):
        for key, value in getattr(before, name).items():
            np.testing.assert_array_equal(value, getattr(after, name)[key])
