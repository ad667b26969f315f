import custos.sdk


def test_all_names_the_public_surface_exactly() -> None:
    assert sorted(custos.sdk.__all__) == [
        "Client",
        "Dataset",
        "Result",
        "Section",
        "WaitTimeout",
        "result_sections",
    ]


def test_every_name_in_all_exists_and_belongs_to_the_sdk() -> None:
    for name in custos.sdk.__all__:
        value = getattr(custos.sdk, name)
        assert value.__module__.startswith("custos.sdk."), name


def test_no_public_name_is_left_out_of_all() -> None:
    public = {n for n in vars(custos.sdk) if not n.startswith("_")}
    submodules = {"client", "dataset", "progress", "responses", "result", "waiting"}
    assert public - submodules == set(custos.sdk.__all__)
