//! The engine against fake ComfyUI servers speaking the real protocol: QA-driven retries become
//! new workflows on the server, server faults become infrastructure errors retried with the same
//! workflow, work is spread over servers, cancelled segments stop their prompts, and a restarted
//! engine re-attaches to its prompt instead of running it twice. Every body runs on SQLite and
//! PostgreSQL. QA is a scripted scorer that reads the downloaded file.

#[path = "comfyui/fixture.rs"]
mod fixture;

#[path = "comfyui/cancel.rs"]
mod cancel;
#[path = "comfyui/dispatch.rs"]
mod dispatch;
#[path = "comfyui/faults.rs"]
mod faults;
#[path = "comfyui/reconcile.rs"]
mod reconcile;
#[path = "comfyui/retry.rs"]
mod retry;

use cancel::*;
use dispatch::*;
use faults::*;
use reconcile::*;
use retry::*;

retake_store::contract_tests!(
    qa_failure_is_retried_with_a_new_seed_and_cfg,
    retry_seeds_stay_inside_a_32_bit_seed_input,
    execution_error_is_retried_with_the_same_workflow,
    out_of_memory_is_retried_with_the_same_workflow,
    interruption_at_the_server_is_retried_with_the_same_workflow,
    malformed_prompt_answer_is_retried_with_the_same_workflow,
    malformed_history_is_retried_with_the_same_workflow,
    output_missing_from_history_is_retried_with_the_same_workflow,
    output_404_is_retried_with_the_same_workflow,
    hung_prompt_times_out_and_is_retried_with_the_same_workflow,
    an_outage_holds_the_queue_until_the_server_is_back,
    waiting_for_a_slot_on_a_healthy_server_is_not_waiting_for_a_server,
    server_down_sends_work_to_the_healthy_server,
    qa_that_cannot_run_is_an_infrastructure_error,
    rejected_workflow_goes_to_review_without_retry,
    infra_retries_are_bounded,
    websocket_drop_mid_run_is_reconciled_from_history,
    work_spreads_over_servers_and_skips_a_drained_one,
    infra_retry_goes_to_the_other_server,
    cancelling_segments_stops_their_prompts_on_the_server,
    restarted_engine_reattaches_to_the_running_prompt,
    reattached_prompt_is_stopped_by_the_budget_from_its_real_start,
    two_installations_sharing_a_server_keep_their_own_work,
);
