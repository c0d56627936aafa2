/**
 * An OSWorld task config (evaluation_examples/examples/<domain>/<id>.json). Validation is
 * lenient where OSWorld's data varies (extra keys, options of any shape) and strict where the
 * runner depends on a field.
 */
import { Type, type Static } from 'typebox';

export const SetupStepSchema = Type.Object(
  { type: Type.String({ minLength: 1 }), parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown())) },
  { additionalProperties: true },
);

export const GetterSchema = Type.Object({ type: Type.String({ minLength: 1 }) }, { additionalProperties: true });

export const EvaluatorSchema = Type.Object(
  {
    func: Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })]),
    result: Type.Optional(Type.Union([GetterSchema, Type.Array(GetterSchema)])),
    expected: Type.Optional(Type.Union([GetterSchema, Type.Array(GetterSchema)])),
    options: Type.Optional(Type.Unknown()),
    conj: Type.Optional(Type.Union([Type.Literal('and'), Type.Literal('or')])),
    postconfig: Type.Optional(Type.Array(SetupStepSchema)),
  },
  { additionalProperties: true },
);

export const TaskSchema = Type.Object(
  {
    id: Type.String(),
    instruction: Type.String({ minLength: 1 }),
    /** Setup steps; a few tasks have none and omit the key (OSWorld reads it as []). */
    config: Type.Optional(Type.Array(SetupStepSchema)),
    evaluator: EvaluatorSchema,
    related_apps: Type.Optional(Type.Array(Type.String())),
    snapshot: Type.Optional(Type.String()),
    source: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())])),
    trajectory: Type.Optional(Type.String()),
    proxy: Type.Optional(Type.Boolean()),
    fixed_ip: Type.Optional(Type.Boolean()),
    possibility_of_env_change: Type.Optional(Type.String()),
  },
  { additionalProperties: true },
);

export type Task = Static<typeof TaskSchema>;
export type SetupStep = Static<typeof SetupStepSchema>;
export type Evaluator = Static<typeof EvaluatorSchema>;
