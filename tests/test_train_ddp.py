"""DistributedDataParallel on CPU: two gloo processes train together and end with equal weights."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str, store: str) -> None:
    import os

    import safetensors.torch as st

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    from neurolp.train.config import make_config
    from neurolp.train.loop import train

    cfg = make_config("quick", model="lp2-smallcnn", dataset="digits", image_size=16, epochs=3,
                      batch_size=32, lr=4e-3, max_train_samples=640, model_kwargs={"width": 8},
                      eval_test=False, device="cpu", progress=False)
    res = train(cfg, out, store=store)
    st.save_file({k: v.contiguous() for k, v in res.model.state_dict().items()},
                 os.path.join(out, f"rank{rank}.safetensors"))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as fh:
        import json

        json.dump(res.summary, fh, default=str)


@pytest.mark.slow  # two spawned interpreters importing torch: ~10-18 s on 2 busy cores
@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason="torch.distributed with gloo is not available")
def test_two_cpu_processes_end_with_identical_weights(tmp_path):
    import json

    import safetensors.torch as st
    import torch.multiprocessing as mp

    out, store = tmp_path / "run", tmp_path / "store"
    mp.spawn(_worker, args=(2, _free_port(), str(out), str(store)), nprocs=2, join=True)
    w0 = st.load_file(out / "rank0.safetensors")
    w1 = st.load_file(out / "rank1.safetensors")
    assert w0.keys() == w1.keys()
    for k in w0:  # parameters through DDP's all-reduce; BatchNorm statistics broadcast from rank 0
        assert torch.equal(w0[k], w1[k]), k
    s0, s1 = (json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))
    assert s0["world_size"] == 2 and s0["global_step"] == 3 * (576 // 32)  # 16 per-rank images a step
    print(f"DDP val accuracy {s0['val_acc']:.1f} %")
    assert s0["val_acc"] == s1["val_acc"] and s0["val_acc"] > 60  # chance is 10 %
    assert s0["published"] and s0["published"] == s1["published"]
    assert (out / "metrics.csv").is_file() and (out / "best.safetensors").is_file()
