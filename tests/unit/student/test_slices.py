from profile_features.student.slices import evaluation_slices, hold_out_items, long_tail_items, without_items


def test_hold_out_is_seeded_and_sized():
    items = [f"i{k}" for k in range(100)]
    held = hold_out_items(items, 0.05, seed=3)
    assert len(held) == 5 and held == hold_out_items(reversed(items), 0.05, seed=3) and held <= set(items)
    assert hold_out_items(items, 0.0) == set() and len(hold_out_items(items[:3], 0.05)) == 1


def test_slices_of_known_users():
    training = {"a": ["x", "x", "x", "y"], "b": ["x", "z"], "c": ["w"]}  # counts: x 4, y 1, z 1, w 1
    assert long_tail_items(training, 0.25) == {"w", "y", "z"}  # the top quarter (1 of 4) is x
    assert without_items({"a": ["x", "q"], "b": ["q"]}, {"q"}) == {"a": ["x"]}
    inputs = {"a": list("abcdefg"), "b": ["x"], "c": ["y"], "d": []}
    targets = {"a": "x", "b": "z", "c": "new", "d": "x"}
    slices = evaluation_slices(inputs, targets, training, unseen={"new"}, short_len=3, head_share=0.25)
    assert slices["all"].users == ["a", "b"] and slices["all"].inputs[0] == list("abcdefg")  # d has no input
    assert slices["short"].users == ["a", "b"] and slices["short"].inputs[0] == ["e", "f", "g"]
    assert slices["long_tail"].users == ["b"] and slices["long_tail"].targets == ["z"]
    assert slices["unseen"].users == ["c"] and slices["unseen"].targets == ["new"]
