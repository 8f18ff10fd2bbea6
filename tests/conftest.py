"""Shared fixtures: an isolated home (no git identity, no user dirs) and fresh journals.

First, before anything loads torch: its OpenMP threads wait asleep in the tests (``OMP_WAIT_POLICY=PASSIVE``,
inherited by every service and command a test starts). libgomp's own way — spinning first — made a step 100× slower
while the suite shares the machine's cores (with itself, or anything else), and neither way changes a result
(tests/bench/cpu_contention.py)."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import subprocess
from pathlib import Path

import pytest

from journal import Journal
from tests.helpers import EXE, poll_until, service_pid, stop_pid
from workshop import paths


# ---------------------------------------------------------------------------------------------------- markers
# The markers (registered in pyproject.toml, where --strict-markers refuses any other) are put on the tests here, from
# the data below, not by decorators in the test files; `pytest -m "not slow"` is the inner loop (every module still
# runs its quick tests), `pytest -n 2` (what .ci/run runs, in two xdist workers) runs everything:
#   ray      every test in RAY_MODULES (a local Ray cluster): slow too
#   tui      every test in TUI_MODULES (the Textual workshop driven by Pilot)
#   service  every test that uses a `service` fixture: this file's (real service processes, started by the commands),
#            its `warm_service` (one service process a module's tests share) or test_a1111.py's (an in-process Service
#            and its worker); and every test in SERVICE_MODULES
#   slow     the tests in SLOW: each took more than about 2 s of call time on a 2-core machine, measured file by file
#            (`pytest -q --durations=0 tests/test_x.py`), then in the `-m "not slow"` run itself (a test left there
#            pays a model load that the tests marked slow used to pay: test_writer's and test_shapes_train's last
#            quick-looking ones); not the first test of a module that only pays a one-off import (torch, open_clip),
#            which the whole run pays once anyway. Names without parameters cover every parametrized case, a name
#            with them ("test_x[a]") that case alone. Measure again and move names when tests change.
RAY_MODULES = {"test_ray.py"}
TUI_MODULES = {"test_tui.py"}
TUI_TESTS = {"test_job_contract.py": {"test_the_tui_resolves_the_same_job_the_same_way",  # the workshop in other modules
                                      "test_the_tui_shows_each_images_own_settings",
                                      "test_a_number_field_holding_nan_is_named_in_one_line"}}
SERVICE_MODULES = {"test_service.py"}
SLOW: dict[str, set[str]] = {
    "test_a1111_conformance.py": {"test_interrupt_returns_the_finished_images_and_progress_showed_a_preview_on_the_way",
                                  "test_each_a1111_schedule_type_runs_or_is_a_422_naming_those_that_do"},
    "test_a1111_clients.py": {"test_sillytavern_connects_switches_to_an_installs_checkpoint_and_generates",
                              "test_open_webui_verifies_switches_the_model_by_posting_the_options_back_and_generates"},
    "test_job_contract.py": {"test_one_job_resolves_the_same_from_the_cli_the_service_and_the_a1111_route"},
    "test_bench_null.py": {"test_the_runner_runs_on_the_stand_in_and_is_timed"},
    "test_cold_start.py": {"test_a_pipeline_loads_by_its_own_class_importing_its_module_alone",
                           "test_the_classes_loaded_directly_are_those_autopipeline_would_load",
                           "test_verbose_lists_the_phases_until_the_first_step_and_each_does_what_it_says",
                           "test_grid_takes_verbose",
                           "test_json_verbose_carries_the_phases_as_events_and_plain_json_does_not",
                           "test_verbose_through_a_service_it_starts_shows_the_service_phases"},
    "test_concurrency.py": {"test_readers_never_see_a_torn_state"},
    "test_crash.py": {"test_killed_at_random_moments"},
    "test_graphics.py": {"test_zoom_keeps_the_image_aspect"},
    "test_flux_files.py": {"test_a_flux_checkpoint_makes_the_pictures_of_its_diffusers_folder_and_reruns_byte_for_byte",
                           "test_a_flux_transformer_alone_takes_the_rest_from_its_config_folder_or_the_hugging_face_cache",
                           "test_a_flux_file_that_cannot_load_is_one_line_saying_why"},  # (a 530M-parameter Flux)
    "test_grid_cli.py": {"test_spec_params_are_honoured_and_flags_win"},
    "test_guided.py": {"test_a_vqgan_decoder_quantises_each_step_or_optimises_continuous_codes",
                       "test_an_init_image_keeps_its_layout", "test_deterministic_for_a_seed_and_the_loss_falls",
                       "test_generate_with_animation_and_accept_records_everything"},
    "test_import_folder.py": {"test_killed_at_random_moments_a_rerun_completes"},
    "test_rerun_imported.py": {"test_an_imported_a1111_image_is_made_again_with_its_weights_sampler_and_settings"},
    "test_resume.py": {"test_a_grid_killed_after_its_first_batch_resumes_to_the_bytes_of_an_uninterrupted_run"},
    "test_sd_upscale.py": {"test_the_image_is_the_upscaled_size_made_as_tiles_recorded_and_rerun_byte_identically",
                           "test_each_tile_is_img2img_of_its_crop_with_seed_plus_its_place",
                           "test_none_keeps_the_init_images_size_and_nearest_upscales_otherwise",
                           "test_an_imported_a1111_sd_upscale_is_read_and_named_in_one_line_by_rerun",
                           "test_the_a1111_test_request_upscales_and_bad_script_args_are_a_422_naming_them"},
    "test_run_commands.py": {"test_a_terminal_sees_loading_model_while_it_loads",
                             "test_ctrl_c_during_a_rerun_exits_130",
                             "test_ctrl_c_keeps_finished_images_and_exits_130",
                             "test_generate_accept_says_what_accept_says_and_no_keep_it_hint",
                             "test_guidance_and_steps_help_match_what_runs_record",
                             "test_the_model_load_is_announced_as_a_json_event",
                             "test_the_progress_line_shows_no_step_count_before_the_first_step"},
    "test_runner.py": {"test_a_broken_model_folder_is_one_line_of_ours_and_nothing_else",
                       "test_a_rerun_keeps_the_grid_layout_of_its_cells", "test_accept_pick_and_rerun_verify",
                       "test_alone_vs_batched_within_1_of_255_and_rerun_identical",
                       "test_an_interrupted_run_is_settled_like_a_cancelled_one",
                       "test_cancel_on_the_last_step_keeps_the_batch", "test_crash_after_first_batch_keeps_it",
                       "test_generate_command_from_the_issue", "test_generate_out_dir_and_json_events",
                       "test_img2img_from_an_experiment_records_the_parent",
                       "test_rerun_verify_fails_when_an_image_differs",
                       "test_runner_never_imports_textual", "test_text_embeddings_computed_once_per_distinct_prompt"},
    "test_runs_accept.py": {"test_a_pretrained_clip_tag_stays_offline_unless_downloads_are_allowed"},
    "test_samplers.py": {"test_a_run_with_a_sampler_records_it_and_reruns_byte_identical",
                         "test_each_sampler_is_its_diffusers_scheduler_on_the_models_own_config",
                         "test_the_sampler_changes_the_images_and_the_default_is_the_models_own",
                         "test_the_sampler_setting_is_the_default_a_spec_key_wins_over_it_and_the_flag_over_both"},
    "test_service.py": {"test_a_killed_client_leaves_its_job_running_and_another_can_follow",
                        "test_kill_9_of_the_service_mid_grid_keeps_batches_and_the_queue_and_resume_gives_the_same_bytes",
                        "test_generate_starts_a_service_gives_the_local_bytes_and_reuses_it",
                        "test_cancel_from_another_client_ends_the_generate_with_130",
                        "test_bad_requests_get_one_line_and_the_service_serves_on",
                        "test_a_stale_socket_is_replaced_and_the_idle_timeout_exits"},
    "test_service_trust.py": {"test_every_route_takes_200_malformed_bodies_and_the_service_runs_on"},
    "test_settings.py": {"test_good_settings_load_typed_and_are_used"},
    "test_shapes_clip.py": {"test_clip_training_lowers_the_loss_and_saves_safetensors"},
    "test_shapes_model.py": {"test_generate_a_red_circle_on_a_blue_background",
                             "test_removing_red_lowers_the_red_circle_score_for_every_seed",
                             "test_shapes_is_the_default_model_at_its_native_size"},
    "test_shapes_train.py": {"test_training_writes_a_loadable_safetensors_pipeline",
                             "test_a_run_can_start_from_an_earlier_runs_autoencoder"},
    "test_sheet.py": {"test_a_2x2_seed_sheet_labels_every_cell_with_its_own_seed"},
    "test_speedups.py": {"test_a_channels_last_run_is_recorded_and_resumes_and_reruns_to_the_same_bytes",
                         "test_a_compiled_run_is_recorded_and_reruns_in_a_new_process_to_the_same_bytes",
                         "test_settings_turn_speedups_on_and_a_flag_turns_one_off_for_a_run",
                         "test_tf32_is_set_for_the_run_only_and_restored_even_when_it_fails"},
    "test_title_rule.py": {"test_a_runs_terms_are_kept_private_and_checked_at_accept_and_retitle"},
    "test_tui.py": {"test_full_loop_compose_ablate_accept_browse_reveal", "test_ui_stays_responsive_while_a_grid_runs",
                    "test_discard_asks_before_deleting_a_run", "test_quitting_during_a_run_asks_first",
                    "test_a_run_cancelled_before_any_image_shows_no_progress_and_cannot_be_accepted",
                    "test_zoom_shows_the_cell_and_the_arrows_move_to_its_neighbours", "test_every_screen_fits_80_by_24",
                    "test_accept_works_off_the_ui_thread_and_a_revealing_title_is_refused_in_the_dialog",
                    "test_accepting_a_run_again_asks_first", "test_rerun_shows_its_progress_on_a_grid_and_its_verdict",
                    "test_a_restarted_workshop_reattaches_to_the_services_job_and_restores_its_composition",
                    "test_esc_cancels_the_services_job_and_u_finishes_it_to_the_same_bytes",
                    "test_quitting_leaves_the_services_job_running_and_says_so",
                    "test_the_axis_editor_builds_axes_live_in_range_syntax_and_says_errors_in_one_line",
                    "test_l_loads_an_experiments_and_a_runs_settings_into_the_composer",
                    "test_c_on_two_cells_compares_them_side_by_side_with_what_differs",
                    "test_issue_16s_grid_is_built_and_run_in_the_composer_and_its_cells_compared",
                    "test_a_scored_weight_sweep_shows_its_curve_in_the_grid", "test_snapshot_grid",
                    "test_snapshot_composer_with_the_axis_editor", "test_snapshot_compare"},
    "test_warm_models.py": {"test_the_least_recently_used_pipeline_is_let_go_on_the_cpu"},
    "test_weights.py": {"test_a_prompt_without_emphasis_is_encoded_and_drawn_as_the_pipeline_does",
                        "test_a_weighted_grid_reruns_byte_identically",
                        "test_each_weight_of_a_keyword_gives_other_pixels",
                        "test_sdxl_two_encoders_and_the_pooled_output",
                        "test_weight_zero_on_shapes_comes_near_the_prompt_without_the_keyword"},
    "test_writer.py": {"test_a_failed_write_fails_the_run_in_one_line_and_keeps_what_was_written",
                       "test_a_run_error_in_the_engine_still_writes_the_batches_it_finished",
                       "test_the_next_batch_runs_while_the_last_is_written_and_each_is_on_disk_before_its_event"},
}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by these markers
def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.path.name
        if module in RAY_MODULES:
            item.add_marker(pytest.mark.ray)
            item.add_marker(pytest.mark.slow)
        if module in TUI_MODULES or getattr(item, "originalname", item.name) in TUI_TESTS.get(module, ()):
            item.add_marker(pytest.mark.tui)
        if module in SERVICE_MODULES or {"service", "warm_service"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.service)
        slow = SLOW.get(module, ())
        if item.name in slow or getattr(item, "originalname", item.name) in slow:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One cache of built-in models for the whole session (the tiny pipeline is built once)."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch, model_cache):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))  # no user.name: the journal must cope
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hf-cache"))
    monkeypatch.setenv("PROMPTISM_CACHE", str(model_cache))
    (home / "config.toml").touch()  # PROMPTISM_CONFIG names a file that is there (empty: the defaults)
    monkeypatch.setenv("PROMPTISM_CONFIG", str(home / "config.toml"))
    monkeypatch.setenv("PROMPTISM_RUNTIME", str(home / "run"))
    monkeypatch.setenv("PROMPTISM_STATE", str(home / "state"))
    monkeypatch.setenv("PROMPTISM_SERVICE", "off")  # in-process, as before; the service's tests turn it on
    monkeypatch.delenv("PROMPTISM_JOURNAL", raising=False)
    monkeypatch.delenv("PROMPTISM_FAILPOINT", raising=False)
    return home


@pytest.fixture
def jdir(tmp_path) -> Path:
    return tmp_path / "journal"


@pytest.fixture
def journal(jdir) -> Journal:
    return Journal.init(jdir)


@pytest.fixture
def service(monkeypatch):
    """Jobs go through the service (started by the commands themselves); every service and client started here is
    stopped in teardown, by pid. Yields the list to put client processes in."""
    monkeypatch.setenv("PROMPTISM_SERVICE", "on")
    Path(os.environ["PROMPTISM_CONFIG"]).write_text('model = "tiny"\n', encoding="utf-8")
    started: list = []
    yield started
    for item in started:
        if isinstance(item, subprocess.Popen):
            if item.poll() is None:
                item.kill()
            item.wait()
        else:
            stop_pid(item)
    if (pid := service_pid()) is not None:
        stop_pid(pid)


@pytest.fixture(scope="module")
def module_service(tmp_path_factory, model_cache) -> Path:
    """One service process for the tests of a module that need a warm service, not a fresh one (``warm_service``):
    started here in a home and runtime folder of its own, stopped by pid when the module's tests are done. Returns
    its home (``run`` its runtime folder, ``state`` the folder of its log and queue file)."""
    home = tmp_path_factory.mktemp("module-service")
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache"),
           "XDG_DATA_HOME": str(home / "data"), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": str(home / "gitconfig"),
           "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(home / "hf-cache"), "PROMPTISM_CACHE": str(model_cache),
           "PROMPTISM_CONFIG": str(home / "config.toml"), "PROMPTISM_RUNTIME": str(home / "run"),
           "PROMPTISM_STATE": str(home / "state"), "PROMPTISM_SERVICE": "on"}
    (home / "config.toml").write_text('model = "tiny"\n', encoding="utf-8")
    started = subprocess.run([EXE, "serve", "--detach"], env=env, capture_output=True, text=True, timeout=600)
    pid = _pid_in(home / "run")
    try:
        assert started.returncode == 0, started.stderr
        yield home
    finally:
        if pid is not None:
            stop_pid(pid)


def _pid_in(runtime: Path) -> int | None:
    try:
        return int((runtime / "service.pid").read_text().strip())
    except (OSError, ValueError):
        return None


@pytest.fixture
def warm_service(module_service, monkeypatch):
    """Jobs go through the module's shared service (``module_service``), already warm; this test's own settings
    (``model = "tiny"``) and journals. Yields the list to put client processes in: each is killed at teardown, and
    the jobs this test left in the service are cancelled and waited out, so the next test finds it idle."""
    from workshop.service.client import ServiceClient

    monkeypatch.setenv("PROMPTISM_SERVICE", "on")
    monkeypatch.setenv("PROMPTISM_RUNTIME", str(module_service / "run"))
    monkeypatch.setenv("PROMPTISM_STATE", str(module_service / "state"))
    Path(os.environ["PROMPTISM_CONFIG"]).write_text('model = "tiny"\n', encoding="utf-8")
    client = ServiceClient(paths.socket_path())
    assert client.ping(), "the module's service is gone"
    pid = service_pid()
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert service_pid() == pid, "a test stopped the shared service; give it the `service` fixture instead"
    for job in client.jobs():
        if job.state in ("queued", "running"):
            client.cancel(job.id, job.journal)
    poll_until(lambda: all(job.state not in ("queued", "running") for job in client.jobs()), 300,
               "the service's jobs to end")
