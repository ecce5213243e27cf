package dev.sfmobile.app.ui

import dev.sfmobile.app.generation.GenerationResult
import dev.sfmobile.app.generation.GenerationStatus
import dev.sfmobile.core.device.Backend
import dev.sfmobile.core.device.BundleSummary

/** What the generate screen shows of the generation: the screen renders it and nothing else decides. */
sealed interface UiState {
    data object Idle : UiState

    data class LoadingBundle(
        val bundle: String,
    ) : UiState

    data class Generating(
        val step: Int,
        val total: Int,
    ) : UiState

    data class Done(
        val result: GenerationResult,
    ) : UiState

    data class Failed(
        val message: String,
    ) : UiState
}

/** The form's fields as typed (validated only on Generate), the bundles found and the choices made. */
data class FormState(
    val bundles: List<BundleSummary> = listOf(),
    val bundlesFolder: String = "",
    val bundle: String? = null,
    val backends: List<Backend> = Backend.entries,
    val backend: Backend = Backend.ORT_CPU,
    val prompt: String = "",
    val negativePrompt: String = "",
    val steps: String = "8",
    val guidance: String = "7.5",
    val seed: String = "0",
    val error: String? = null,
    val notice: String? = null,
    /** The guidance is outside the range the chosen bundle was distilled for (the core's guidanceWarning). */
    val guidanceWarning: String? = null,
)

internal fun GenerationStatus.toUiState(): UiState =
    when (this) {
        GenerationStatus.Idle -> UiState.Idle
        is GenerationStatus.Loading -> UiState.LoadingBundle(bundle)
        is GenerationStatus.Running -> UiState.Generating(step, total)
        is GenerationStatus.Finished -> UiState.Done(result)
        is GenerationStatus.Failed -> UiState.Failed(message)
    }
