package dev.sfmobile.core.bench

import java.time.OffsetDateTime
import java.time.ZoneOffset
import java.time.format.DateTimeFormatter
import java.time.temporal.ChronoUnit

/** Benchmark session ids: also the result's file name, `benchmarks/<session_id>.json`. */
object SessionIds {
    /** The schema's pattern for `session_id`. */
    val PATTERN = Regex("^[A-Za-z0-9._-]{1,64}$")

    private val STAMP = DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss'Z'")
    private val UNSAFE = Regex("[^A-Za-z0-9._-]+")

    fun isValid(id: String): Boolean = PATTERN.matches(id)

    /** `20261201T031500Z-SM-S911B-ort-qnn`: UTC start, device model, backend; at most 64 characters. */
    fun of(
        startedAt: OffsetDateTime,
        deviceModel: String,
        backendId: String,
    ): String {
        val stamp = startedAt.withOffsetSameInstant(ZoneOffset.UTC).format(STAMP)
        val model = UNSAFE.replace(deviceModel.trim(), "_").trim('_').ifEmpty { "device" }
        val id = "$stamp-$model-$backendId"
        return if (id.length <= 64) id else "$stamp-${model.take(64 - stamp.length - backendId.length - 2)}-$backendId"
    }

    /** `started_at` as the schema wants it: ISO 8601 with offset, whole seconds. */
    fun timestamp(time: OffsetDateTime): String = time.truncatedTo(ChronoUnit.SECONDS).format(DateTimeFormatter.ISO_OFFSET_DATE_TIME)
}
