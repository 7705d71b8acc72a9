// Package awsemu holds the AWS test doubles of the awskms driver's tests,
// reached by the official SDK over HTTP exactly as AWS is:
//
//   - [STS], a stand-in for STS AssumeRole (the Query API's form request and
//     XML answers): it knows each role's required external ID, refuses
//     others with 403 AccessDenied, and issues expiring session credentials.
//   - [KMS], a proxy in front of local-kms (github.com/nsmithuk/local-kms, a
//     real AWS KMS emulator) that adds what local-kms lacks, in AWS's
//     documented shapes: key material IDs (DescribeKey's
//     CurrentKeyMaterialId, Decrypt's KeyMaterialId), RotateKeyOnDemand and
//     ListKeyRotations, automatic rotation (EnableKeyRotation with
//     RotationPeriodInDays, DisableKeyRotation, GetKeyRotationStatus with
//     the period and NextRotationDate), IncorrectKeyException for a blob of another key,
//     CancelKeyDeletion leaving the key Disabled, deleted keys
//     (NotFoundException), session credentials checked against [STS], IAM
//     denials (AccessDeniedException) and injected faults (throttling,
//     5xx), and a request quota ([KMS.SetRateLimit]) answered as AWS does,
//     HTTP 400 ThrottlingException.
//   - [Main], a TestMain that re-runs the test binary in a private network
//     namespace (local-kms listens on every interface and has no host
//     option) and starts local-kms there on loopback ([LocalKMSURL]).
//
// A rotation is modelled as local-kms does not: each new key material is a
// hidden local-kms key; the proxy encrypts with the current one, decrypts a
// blob with the material that made it (local-kms blobs name their key's ARN
// first) and answers with the customer key's ARN only.
package awsemu
