"""The optimizer update of a training step moves each byte once (issue 12).

Counted by hand for BERT-Tiny with Adam on ``acceltran-edge`` (20-bit data:
2.5 bytes per element).  For a trained parameter of ``n`` elements the
update reads its two moments ``m`` and ``v`` from main memory once
(``2 x 2.5 n`` bytes: they live there between steps and nothing else reads
them) and writes the new parameter, ``m`` and ``v`` back to main memory once
(``3 x 2.5 n`` bytes).  ``tensor.assign`` only names where the update's
results go: the update writes them through, and the assign moves nothing
more (it used to read the three results back from main memory -- 3 x 9.77 MB
for the word embeddings -- and write nothing, while a small parameter's new
value was never written at all).
"""

from __future__ import annotations

from backends.elector.mapping import map_function
from backends.elector.tiling import schedule_function

BATCH, SEQ = 2, 8


def test_adam_update_bytes_counted_once(zoo, design) -> None:
    accelerator = design("acceltran-edge")
    static = zoo.static("bert-tiny", BATCH, SEQ, train=True)
    module = static.module
    mappings, plan = map_function(static, accelerator)
    mapped = schedule_function(static, accelerator, mappings, plan=plan)
    bpe = accelerator.data_width_bits / 8
    assert bpe == 2.5

    assert not [op for op in mapped.ops if op.kind == "tensor.assign"], \
        "tensor.assign is no job of its own: the update writes its results through"
    updates = [op for op in mapped.ops if op.kind == "optim.adam"]
    trained = [name for name in module.params if name + ".adam_m" in module.params]
    assert len(updates) == len(trained) > 0

    # Writes: each update writes param', m', v' to main memory, exactly once.
    written = sum(t.main_memory_write_bytes for op in updates for t in op.operands
                  if t.role.startswith("out"))
    expected_written = sum(3 * module.params[name].type.numel * bpe for name in trained)
    assert written == expected_written
    # The word embeddings (512-word test vocabulary x 128): 3 x 65,536 x 2.5 bytes.
    word = [op for op in updates if op.loc == "embeddings.word_embeddings.weight"]
    assert word and sum(t.main_memory_write_bytes for t in word[0].operands
                        if t.role.startswith("out")) == 3 * 512 * 128 * 2.5

    # Reads of the moments: once each over the whole step, by their update.
    for name in trained:
        for moment in (f"{name}.adam_m", f"{name}.adam_v"):
            read = sum(t.main_memory_read_bytes for op in mapped.ops for t in op.operands
                       if t.value == moment)
            assert read == module.params[moment].type.numel * bpe, moment

    # Nothing after the updates reads their results back from main memory.
    results = {t.value for op in updates for t in op.operands if t.role.startswith("out")}
    later = [op for op in mapped.ops if op.index > min(u.index for u in updates)]
    assert not [t for op in later for t in op.operands
                if t.value in results and not t.role.startswith("out")
                and t.main_memory_read_bytes > 0]
