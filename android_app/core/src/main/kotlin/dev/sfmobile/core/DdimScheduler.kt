package dev.sfmobile.core

import kotlin.math.sqrt

/** The noise schedule and sampling rules (the manifest's `scheduler`); defaults are SD-1.x's. */
data class SchedulerConfig(
    val numTrainTimesteps: Int = 1000,
    val betaStart: Double = 0.00085,
    val betaEnd: Double = 0.012,
    val betaSchedule: String = "scaled_linear",
    val predictionType: String = "epsilon",
    val timestepSpacing: String = "leading",
    val stepsOffset: Int = 1,
    val setAlphaToOne: Boolean = false,
    val clipSample: Boolean = false,
    val clipSampleRange: Double = 1.0,
    val defaultSteps: Int = 8,
    val defaultGuidance: Double = 7.5,
) {
    init {
        fun require(
            name: String,
            ok: Boolean,
            rule: String,
            value: Any,
        ) {
            if (!ok) throw ConfigException("SchedulerConfig.$name = $value must be $rule")
        }

        fun oneOf(
            name: String,
            value: String,
            allowed: List<String>,
        ) {
            if (value !in allowed) {
                throw ConfigException("SchedulerConfig.$name = '$value' is not supported; expected one of ${allowed.joinToString()}")
            }
        }
        oneOf("beta_schedule", betaSchedule, listOf("scaled_linear", "linear", "squaredcos_cap_v2"))
        oneOf("prediction_type", predictionType, listOf("epsilon", "v_prediction"))
        oneOf("timestep_spacing", timestepSpacing, listOf("leading", "trailing", "linspace"))
        require("num_train_timesteps", numTrainTimesteps >= 1, ">= 1", numTrainTimesteps)
        require("beta_start", betaStart > 0.0 && betaStart < 1.0, "in (0, 1)", betaStart)
        require("beta_end", betaEnd > 0.0 && betaEnd < 1.0, "in (0, 1)", betaEnd)
        require("steps_offset", stepsOffset >= 0, ">= 0", stepsOffset)
        require("clip_sample_range", clipSampleRange > 0.0, "> 0", clipSampleRange)
        require("default_steps", defaultSteps in 1..numTrainTimesteps, "in [1, num_train_timesteps]", defaultSteps)
        require("default_guidance", defaultGuidance.isFinite() && defaultGuidance >= 0.0, "finite and >= 0", defaultGuidance)
    }
}

/**
 * Deterministic DDIM (eta = 0), epsilon and v-prediction: sfmobile/scheduler.py's sampling half,
 * following docs/scheduler.md operation by operation in float32 (the JVM never contracts a*b + c
 * into an FMA, and sqrt(Float) is correctly rounded), so trajectories match Python bit for bit.
 */
class DdimScheduler(
    val config: SchedulerConfig = SchedulerConfig(),
) {
    /** alpha_bar_t, t = 0 until T, float32. */
    val alphasCumprod: FloatArray = alphasCumprod(config)
    val finalAlphaCumprod: Float = if (config.setAlphaToOne) 1f else alphasCumprod[0]

    /** The numSteps timesteps to visit, descending (diffusers' set_timesteps). */
    fun timesteps(numSteps: Int = config.defaultSteps): IntArray {
        val n = checkSteps(numSteps)
        val t = config.numTrainTimesteps
        val values =
            when (config.timestepSpacing) {
                "leading" -> {
                    IntArray(n) { i -> (n - 1 - i) * (t / n) + config.stepsOffset }
                }

                "trailing" -> {
                    val first = t.toDouble()
                    val second = t - t.toDouble() / n
                    val delta = second - first
                    IntArray(n) { i ->
                        val point =
                            if (i == 0) {
                                first
                            } else if (i == 1) {
                                second
                            } else {
                                first + i * delta
                            }
                        Math.rint(point).toInt() - 1
                    }
                }

                else -> {
                    val step = if (n > 1) (t - 1).toDouble() / (n - 1) else 0.0
                    val points = DoubleArray(n) { i -> i * step }
                    if (n > 1) points[n - 1] = (t - 1).toDouble()
                    IntArray(n) { i -> Math.rint(points[n - 1 - i]).toInt() }
                }
            }
        if (values.min() < 0 || values.max() >= t) {
            throw InputException(
                "num_steps=$n with ${config.timestepSpacing} spacing and steps_offset=${config.stepsOffset} " +
                    "gives timesteps outside [0, $t)",
            )
        }
        return values
    }

    /** t - T / numSteps for every spacing; negative means "final alpha". */
    fun prevTimestep(
        timestep: Int,
        numSteps: Int,
    ): Int = timestep - config.numTrainTimesteps / checkSteps(numSteps)

    /** One DDIM step from `timestep` to prevTimestep(timestep, numSteps); returns a new array. */
    fun step(
        modelOutput: FloatArray,
        timestep: Int,
        sample: FloatArray,
        numSteps: Int,
    ): FloatArray {
        if (modelOutput.size != sample.size) {
            throw InputException("model output has ${modelOutput.size} values, the sample ${sample.size}")
        }
        if (timestep !in 0 until config.numTrainTimesteps) {
            throw InputException("timestep $timestep is outside [0, ${config.numTrainTimesteps})")
        }
        val a = alphasCumprod[timestep]
        val alpha = sqrt(a)
        val sigma = sqrt(1f - a)
        val tPrev = prevTimestep(timestep, numSteps)
        val aPrev = if (tPrev >= 0) alphasCumprod[tPrev] else finalAlphaCumprod
        val alphaPrev = sqrt(aPrev)
        val sigmaPrev = sqrt(1f - aPrev)
        val epsilon = config.predictionType == "epsilon"
        val clip = config.clipSample
        val limit = config.clipSampleRange.toFloat()
        return FloatArray(sample.size) { i ->
            val out = modelOutput[i]
            val x = sample[i]
            var x0: Float
            val eps: Float
            if (epsilon) {
                x0 = (x - sigma * out) / alpha
                eps = out
            } else {
                x0 = alpha * x - sigma * out
                eps = alpha * out + sigma * x
            }
            if (clip) x0 = x0.coerceIn(-limit, limit)
            alphaPrev * x0 + sigmaPrev * eps
        }
    }

    /**
     * x_t = sqrt(a_t) x0 + sqrt(1 - a_t) noise in float32, in that order (scheduler.py's add_noise,
     * diffusers' add_noise): image-to-image noises the picture's latents to its first timestep.
     */
    fun addNoise(
        x0: FloatArray,
        noise: FloatArray,
        timestep: Int,
    ): FloatArray {
        if (x0.size != noise.size) throw InputException("x0 has ${x0.size} values, the noise ${noise.size}")
        if (timestep !in 0 until config.numTrainTimesteps) {
            throw InputException("timestep $timestep is outside [0, ${config.numTrainTimesteps})")
        }
        val a = alphasCumprod[timestep]
        val alpha = sqrt(a)
        val sigma = sqrt(1f - a)
        return FloatArray(x0.size) { i -> alpha * x0[i] + sigma * noise[i] }
    }

    private fun checkSteps(numSteps: Int): Int {
        if (numSteps !in 1..config.numTrainTimesteps) {
            throw InputException("num_steps=$numSteps must be in [1, ${config.numTrainTimesteps}] (num_train_timesteps)")
        }
        return numSteps
    }

    companion object {
        /** beta_t as torch's CPU float32 linspace gives them (docs/scheduler.md section 2). */
        fun betas(config: SchedulerConfig): FloatArray {
            val n = config.numTrainTimesteps
            if (config.betaSchedule == "squaredcos_cap_v2") {
                fun alphaBar(x: Double): Double {
                    val c = Math.cos((x + 0.008) / 1.008 * Math.PI / 2)
                    return c * c
                }
                return FloatArray(n) { i -> minOf(1 - alphaBar((i + 1).toDouble() / n) / alphaBar(i.toDouble() / n), 0.999).toFloat() }
            }
            val scaled = config.betaSchedule == "scaled_linear"
            val start = if (scaled) sqrt(config.betaStart) else config.betaStart
            val end = if (scaled) sqrt(config.betaEnd) else config.betaEnd
            val values = linspaceFloat32(start, end, n)
            return if (scaled) FloatArray(n) { values[it] * values[it] } else values
        }

        private fun linspaceFloat32(
            start: Double,
            end: Double,
            n: Int,
        ): FloatArray {
            val s = start.toFloat()
            val e = end.toFloat()
            val h = (e - s) / maxOf(n - 1, 1).toFloat()
            return FloatArray(n) { i ->
                if (i < n / 2) {
                    (s.toDouble() + h.toDouble() * i).toFloat()
                } else {
                    (e.toDouble() - h.toDouble() * (n - 1 - i)).toFloat()
                }
            }
        }

        /** prod (1 - beta_s), float32 factors, a double running product, each prefix rounded to float32. */
        fun alphasCumprod(config: SchedulerConfig): FloatArray {
            val betas = betas(config)
            var acc = 1.0
            return FloatArray(betas.size) { i ->
                acc *= (1f - betas[i]).toDouble()
                acc.toFloat()
            }
        }
    }
}
